Large messages are copied once on their way in: body frames are handed from the frame reader to
the channel as views of the received data (or, for a frame split across reads, as its pieces) and
joined once into the message's body, instead of being sliced per frame, joined per straddling
frame and joined again. A 16 MiB delivery now allocates under 1.2 times its size.
