// Package pow checks sha256d proof of work for Bitcoin-family stratum v1
// shares: it rebuilds the coinbase, the merkle root and the 80-byte block
// header from a mining.notify job and a mining.submit, hashes the header
// twice with SHA-256 and compares the result with a share target.
//
// # Basics
//
// A job comes from the raw params of mining.notify (ParseNotify). A share is
// (extranonce1, extranonce2, ntime, nonce, version bits); Checker.Hash turns
// it into the header hash, and MeetsTarget compares that hash with the
// target of a share difficulty, computed once per difficulty by Target:
//
//	job, _, err := pow.ParseNotify(params)
//	target := pow.Target(0.01) // once per difficulty, not per share
//	var c pow.Checker          // one per goroutine, reused
//	h := c.Hash(&job, en1, en2, ntime, nonce, versionBits, versionMask)
//	ok := pow.MeetsTarget(h, target)
//
// The byte order conventions are those of pooler's cpuminer and of every
// pool it talks to (see the package tests, which re-validate every accepted
// share of real captured sessions):
//
//   - coinbase = coinb1 || extranonce1 || extranonce2 || coinb2;
//   - merkle root = sha256d(coinbase), then root = sha256d(root || branch)
//     for each branch, in the order sent;
//   - header = version | prevhash | root | ntime | nbits | nonce, the four
//     32-bit fields little-endian (they are sent as big-endian hex), and the
//     prevhash with each 4-byte word byte-swapped relative to the way
//     mining.notify sends it;
//   - with version rolling (BIP310), version = (job version &^ mask) |
//     (version bits & mask);
//   - the hash is a 256-bit little-endian integer, and a share meets
//     difficulty d when hash <= Diff1Target / d.
//
// # Performance
//
// Checker.Hash, HeaderHash, MeetsTarget and Difficulty do not allocate.
// Target uses math/big and allocates: compute it when the difficulty changes
// and keep the result. A miner searching nonces should compute the merkle
// root once per extranonce2 (Checker.MerkleRoot), build the header once
// (Header) and then only rewrite the nonce (PutNonce) before HeaderHash.
//
// # Caveats
//
// The share checking above is sha256d. For scrypt (Litecoin-family) pools,
// which hash the same header with scrypt(header, header, N=1024, r=1, p=1)
// and use a difficulty 1 of 2^16 expected hashes instead of 2^32, the
// package offers ScryptHash, ScryptTarget (Target(d / ScryptDiffFactor)) and
// ScryptDifficulty; the merkle root and header are built as above. Unlike
// HeaderHash, ScryptHash allocates (128 KiB) and costs about a millisecond:
// it serves the test pool and miner, not a hot path.
package pow
