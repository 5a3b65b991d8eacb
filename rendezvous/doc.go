// Package rendezvous is the signalling service that stands in for the Steam
// back end: it knows who is online, under which AppID, with which X25519
// public key, and at which addresses, and it introduces two peers to each
// other so that they can punch through their NATs.
//
// The Server owns its UDP socket. The Client does not: a peer has one UDP
// socket for the rendezvous, STUN, TURN and every other peer (so that the
// mapping its NAT made for the server is the one other peers are told about),
// so the Client is handed the datagrams the peer reads (HandleInbound) and a
// function that writes on that socket (ClientConfig.Send).
//
// A peer registers (SteamID, AppID, public key, local candidates) and
// refreshes that registration periodically; the server answers with the
// address it saw the peer at. A registered peer looks another up: the server
// answers with the target's key and candidates, or says that the target is
// not online or runs another AppID, and forwards an Offer carrying the
// requester's key, candidates and session ID to the target. Once the
// target's client has handed the offer to its application (ClientConfig.OnOffer
// has returned), it sends the server a receipt, which the server passes on to
// the requester (ClientConfig.OnDelivered): the requester then knows that
// whatever the target sent from OnOffer, such as the low-TTL packets that
// open its own NAT toward the requester, is already out. Every message
// starts with wire.KindRendezvous so that it can be told apart from the other
// traffic on the shared socket.
//
// A registration that would take a table slot, move one, or cost the
// server a key agreement must carry a cookie that the server gave its
// source address in a CHALLENGE (see cookie.go): a registration from a
// forged source costs the server one HMAC and gets a CHALLENGE smaller than
// itself, nothing more.
//
// The server has an X25519 key pair of its own and gives its public key in
// every CHALLENGE and every answer to a registration. A client configured
// with its private key (ClientConfig.PrivateKey) then shares a key with the
// server that no one watching the wire can compute, and ends everything it
// sends with a MAC under it; its first registration, sent before it knows
// the server's key, is challenged, and followed at once by an
// authenticated one with the cookie. A live authenticated registration is
// not taken over by another key (RefuseIDInUse), unless the server has a
// secret and the newcomer a valid token: a player who restarts with a new
// key gets its SteamID back with its token, or at once if it kept its key. From then on the server takes
// nothing unauthenticated in that client's name, so a captured message,
// replayed or altered, cannot move the client's registration elsewhere or
// make offers it never asked for. The server, in turn, ends everything it
// sends to an authenticated client with a MAC under the same key, and such a
// client takes nothing from the server's address without it, so that no
// one who can merely spoof that address can inject offers or lookup results.
// The server's key itself is trusted on first use (see Client.HandleInbound).
// Requests are padded to a fixed size, so that nothing the server sends
// because of one (an answer, an offer, a delivery report) is larger than it.
//
// The server's one UDP port is also a STUN server: it answers Binding
// requests with the address they came from, so that a peer learns its public
// address from the same NAT mapping its rendezvous traffic uses. With
// ServerConfig.RelayIP it is a TURN relay too (pion/turn's server, fed from
// the same socket). The answer to an authenticated registration carries
// short-lived credentials, per user, for that relay and for the operator's
// external TURN servers (ServerConfig.TURN, coturn's shared-secret scheme;
// see relay.go), so that a client needs no relay configuration of its own
// (Client.Relays, ClientConfig.OnRelays). A client that holds allocations on
// relays advertises their addresses (Client.SetRelayed), and the server
// passes them on in offers and lookup results (Offer.Relayed,
// LookupResult.Relayed).
//
// Without Steam to vouch for SteamIDs, the server can demand a registration
// token (ServerConfig.Secret): the game's back end makes one per player
// under a secret it shares with the server (IssueToken), the client sends
// it in every authenticated registration, encrypted under the key it shares
// with the server (ClientConfig.Token), and the server refuses a
// registration whose token is missing, not its own, expired, or made for
// another SteamID or AppID, saying which (RefuseToken*; see token.go).
//
// The rendezvous vouches for the keys it hands out, which makes whoever
// runs it able to give each side a key of its own. A game back end can take
// that away: it certifies each player's key (IssueCertificate), the server
// passes the certificates on unread (ClientConfig.Certificate,
// Offer.Certificate, LookupResult.Certificate), and peers check them
// against the back end's public key (VerifyCertificate; see cert.go).
//
// What the server tells about users is kept to what their peers need. With
// ServerConfig.HidePresence, a lookup of a user who is offline or in
// another game is not answered at all, and each AppID has registrations of
// its own (one SteamID may be registered in several games at once), so
// that only players of the same game learn who is online. A client with ClientConfig.HideAddress is never
// described to anyone by the address the server sees it at nor by its
// local ones: offers and lookup results about it carry its relayed
// addresses alone, so that peers reach it through a relay only. The
// embedded relay, in turn, lets an allocation reach only the player's
// contacts, the users it looked up or was offered by (see relay.go), so
// that credentials handed to a player do not make the relay a way to reach
// anyone else.
//
// Every datagram the server receives counts against a token bucket of its
// source address before anything else looks at it; what is over it is
// dropped (ServerConfig.RateLimit and RelayRateLimit; see ratelimit.go).
//
// The server counts what it does, for its operator: datagrams and bytes in
// and out, registrations accepted and refused, lookups by answer, offers,
// what it drops and why, users online, and the embedded relay's
// allocations and traffic. The counters are atomics, added to where things
// happen, and Server.Stats reads them into a ServerStats;
// cmd/p2pcompat-server serves them as Prometheus metrics.
package rendezvous
