// Package proxy is the stratum proxy itself: a gnet event loop that accepts
// miners on one port, runs a small state machine per miner connection and
// multiplexes the miners of one pool account onto shared upstream pool
// connections by extranonce splitting.
//
// # Basics
//
// A miner connects, subscribes (it is handed a session id, an extranonce1
// prefix P of k bytes and an extranonce2 size m at once, before the proxy
// knows its pool), authorizes with a name issued by the HTTP API, and is then
// attached to an upstream of that name's pool account. Every miner of an
// upstream receives the same mining.notify bytes: the proxy appends the pool's
// extranonce1 E1 to coinb1, so the coinbase the miner builds,
//
//	coinb1 || E1 || P || X || F || coinb2
//
// is byte for byte the coinbase the pool expects when the proxy submits the
// share upstream with extranonce2 = P || X || F (F is zero padding when the
// pool's extranonce2 size N exceeds k+m; it is moved into coinb2). P and m are
// fixed at subscribe time, so a miner keeps them across pool reconnects,
// failover and session restore. Only a pool whose N is smaller than k+m forces
// a new layout (mining.set_extranonce, or one reconnect for miners that never
// sent mining.extranonce.subscribe).
//
// # Ownership
//
// Every miner connection (minerConn) belongs to the gnet event loop it was
// accepted on, and only that loop touches it. A session (the part that
// survives a reconnect: id, prefix, account) belongs to the loop of its
// current connection, or to the restore table while it waits out its grace
// period. An upstream's socket belongs to the loop it was enrolled on; its
// shared state (members, pending submits, outgoing bytes) is guarded by its own
// mutex, never by a global lock. Loops talk to each other only through their
// mailboxes (see loop.go): events are plain values in a reused slice, so a
// relayed share or a notify fan-out does not allocate in steady state.
//
// # Caveats
//
// Byte slices decoded from a frame alias the event loop's input buffer and are
// valid only until the callback returns; everything kept longer is copied.
package proxy
