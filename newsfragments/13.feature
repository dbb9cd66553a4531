Large messages are copied once on their way in: body frames are handed from the frame reader to
the channel as views of the received data (or, for a frame split across reads, as its pieces) and
joined once into the message's body, instead of being sliced per frame, joined per straddling
frame and joined again. A 16 MiB delivery now allocates under 1.2 times its size.

`txamqp_next.pool.ChannelPool`: many synchronous calls in flight at once, each on a channel of its
own from a pool (opened as needed up to its size), with the typed channel calls; a broker error
fails only the call that caused it. Declaring and deleting 1,000 queues through a pool of 64
channels ran at 1,224 queues/s (median of 5 rounds), against about 280/s on one channel. puka
0.0.8, which gives each outstanding call a channel, is a peer in the benchmark for `declare`.

Thrift clients and servers use Thrift's binary protocol with its C codec
(`txamqp_next.thrift.binary_protocol()`, Thrift's `TBinaryProtocolAcceleratedFactory`) by
default, where Thrift was built with it: the same bytes on the wire as the Python codec txAMQP
uses, with the calls' arguments and results encoded and decoded in C.

Plain TCP connections hand their socket up to 1 MiB per `send` (Twisted's default is 128 KiB, a
turn of the reactor each), so a large message takes fewer turns of the reactor to go out.
