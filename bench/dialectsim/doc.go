// Package dialectsim simulates pools and miners of the non-Bitcoin stratum
// dialects, for the proxy's end-to-end tests: a Miner talks to a Pool
// either directly or through the proxy, and the Pool counts what it
// accepts and why it rejects the rest, so a test can tell when the proxy
// rewrote something wrongly.
//
// Dialects (Kind):
//
//   - cryptonote: Monero/xmrig JSON-RPC 2.0 (login, job, submit,
//     keepalived, getjob). The nonce is blob bytes 39..42, little-endian;
//     byte 42 is its top byte. The pool advertises the "nicehash"
//     extension, so the miner keeps byte 42 and varies bytes 39..41, as
//     xmrig does.
//   - ethstratum: NiceHash EthereumStratum/1.0.0 (subscribe with
//     extranonce, set_difficulty in units of 2^32 hashes, notify with
//     seed and header hash, set_extranonce).
//   - ethproxy: ETHProxy, getwork over a socket (eth_submitLogin,
//     eth_getWork, eth_submitWork, eth_submitHashrate, work pushed with
//     id 0); difficulty in hashes.
//   - kawpow: Ravencoin stratum (set_target, notify with target; the
//     nonce must begin with the subscribe extranonce).
//   - equihash: Zcash stratum (nonce1 from subscribe, set_target,
//     notify; submit with time, nonce2 and an fd4005 solution).
//   - kheavyhash: Kaspa bridge stratum (set_extranonce with the nonce
//     size left, set_difficulty, notify with a hex header).
//
// # What is real and what is not
//
// The real proofs of work (RandomX, ethash, kawpow, equihash, kHeavyHash)
// are NOT computed by this package, neither by the miner nor by the pool.
// Both use a stand-in: SHA-256 over the fields the real hash depends on,
// so a share whose nonce, extranonce, job or result the proxy altered
// does not verify:
//
//   - cryptonote: result = SHA-256(blob with the nonce at bytes 39..42);
//     the pool recomputes it ("Invalid result" when it differs) and
//     compares its last 8 bytes, little-endian, with (2^64-1)/difficulty.
//   - ethstratum, kheavyhash, kawpow, ethproxy: SHA-256(header hash ||
//     8-byte nonce) as a big-endian number, at most the target. The
//     ethproxy/kawpow mix digest is SHA-256(nonce || header), which the
//     pool checks too.
//   - equihash: SHA-256(merkle root || nonce1 || nonce2 || solution); the
//     solution is only checked for its length and fd4005 prefix.
//
// Target explains the difficulty-to-target rule of each kind and
// DefaultDifficulty the defaults, chosen so that a share takes about 32
// stand-in hashes.
//
// What the pool does check for real: the message shapes of each dialect,
// login/authorize before shares, that the submitting worker was
// authorized on the connection, that the job id is known and not stale
// (JobHistory jobs; a clean job drops the older ones), nonce lengths and
// ranges, including the extranonce prefix where the dialect has one,
// duplicates (the same job and the same full nonce, extranonce included,
// is refused as a duplicate), and the share's difficulty against the
// stand-in hash.
//
// Every loop is bounded in count and time, and everything listens and
// dials on the addresses given (127.0.0.1:0 by default).
package dialectsim
