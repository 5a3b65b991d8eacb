// Package relayfallback is the relay side of a session: a TURN client that
// runs over the peer's one shared UDP socket without owning it.
//
// The socket's reader hands every datagram that comes from the TURN server's
// address to [Client.HandleInbound], which keeps the TURN messages and
// ChannelData and leaves everything else (STUN Binding answers, rendezvous
// traffic on the same server port) to the caller. Everything the client sends
// goes out through [Config.Send]. Data that peers send to our relayed address
// arrives at [Config.OnData], on the client's own reader goroutine.
//
// github.com/pion/turn/v2 does the allocation, its refresh, the
// deallocation and the retransmission of every request. The client itself
// signs its CreatePermission and ChannelBind requests, renews them, keeps the
// NAT mapping toward the server alive, and frames ChannelData and Send
// indications, so that a caller holding a session lock never waits for the
// network: [Client.WriteTo] and [Client.Permit] return at once, and the round
// trips run on the client's worker goroutine.
package relayfallback
