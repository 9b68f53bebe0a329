// Package poolsim is a stratum v1 (sha256d or scrypt) pool simulator for
// tests and benchmarks. It behaves like the real pools captured in
// testdata/transcripts (ckpool and the node stratum-pool): it hands out a
// unique extranonce1 per connection, sends mining.set_difficulty and a clean
// mining.notify after authorize, and validates every share by hashing it
// with proxy/pow. A pool that accepted everything would prove nothing.
//
// # Basics
//
//	s, err := poolsim.Start(poolsim.Config{Difficulty: 1e-6})
//	defer s.Close()
//	// point a miner or the proxy at s.Addr(); then
//	s.Notify(true)        // a new block: older jobs become stale (21)
//	s.SetDifficulty(0.01) // applies to jobs sent after it
//	st := s.Stats()       // accepted, rejected by code, per-user difficulty
//
// Every share is checked like a real pool checks it, in this order:
// not subscribed (25), malformed params (20), worker not authorized on this
// connection (24), job unknown, never sent to this connection or stale
// (21), wrong extranonce2 size, ntime or nonce not 8 hex digits, ntime
// before the job's or more than 2 hours ahead, version bits outside the
// granted mask (20), hash above the target of the difficulty in force when
// the job was sent to that connection (23; the hash and the target are
// sha256d's or, with Config.Algorithm "scrypt", scrypt's with its 2^16
// larger difficulty-1 target), and the same share accepted
// before (22). Extranonce1 and the extranonce2 size are also those in force
// when the job was sent (see SetExtranonce).
//
// # Concurrency
//
// A goroutine per connection reads and answers requests in order, so
// pipelined requests with the same id (cpuminer sends every submit with id
// 4) get their answers in order. Broadcasts (Notify, SetDifficulty,
// Reconnect, ...) are serialized, so every connection sees them in the same
// order. All methods of Server are safe for concurrent use.
//
// # Caveats
//
// It is a test tool: goroutine-per-connection and an allocation per
// broadcast are fine. Per-connection memory is kept small (a 1 KiB read
// buffer, no per-connection writer goroutine unless ShareDelay is set) so one
// process holds tens of thousands of connections. Duplicate detection
// remembers every accepted share hash of the last JobHistory jobs: with
// NotifyInterval 0 and a very long benchmark that set grows with the number
// of accepted shares (about 60 bytes each).
package poolsim
