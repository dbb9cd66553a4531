Publisher confirms (PublishNacked, Unroutable), returns, connection.blocked and channel.flow holding publishes, update_secret.
