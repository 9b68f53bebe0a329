// Package miner is a stratum v1 (sha256d or scrypt) test miner for
// end-to-end tests and benchmarks. It speaks to a pool (or the proxy) like
// the CPU miners in
// testdata/transcripts: optional mining.configure before subscribe (BIP310),
// mining.subscribe with an optional session id, mining.authorize, optional
// mining.extranonce.subscribe, then mining.submit with a fixed id (like
// cpuminer's 4) or increasing ids. Its shares are real: Mine searches
// nonces with proxy/pow until the hash meets the difficulty.
//
// # Basics
//
//	m, err := miner.Dial(miner.Config{Addr: addr, User: "acct.rig1", Password: "x"})
//	defer m.Close()
//	sh, err := m.Mine(ctx, 0) // at the pool's difficulty
//	ok, code, msg, err := m.Submit(ctx, sh)
//
// It follows what the pool pushes: mining.set_difficulty (for jobs sent
// after it), mining.set_extranonce (for jobs sent after it, as real miners
// build the coinbase when the job arrives), mining.set_version_mask,
// client.reconnect and client.show_message (recorded, see Notifications and
// Reconnects; the miner does not reconnect by itself), and it answers the
// pool's client.get_version and mining.ping requests.
//
// # Concurrency
//
// One goroutine per Miner reads the connection. All methods are safe for
// concurrent use; concurrent Submits with the same id are matched to their
// answers in order (FIFO per id), as stratum pools answer in order. Mine
// calls are serialized per Miner.
//
// # Caveats
//
// The miner is built for tests that run up to a thousand of them in one
// process: a goroutine and a 4 KiB read buffer each, and a nonce search
// that is only fast enough for small difficulties (a sha256d per nonce;
// difficulty 1e-6 is about 4,300 hashes). With Config.Algorithm "scrypt" a
// nonce costs a scrypt hash, about a millisecond and 128 KiB of garbage,
// and difficulty d is about 65,536 * d hashes (1e-4: 7).
package miner
