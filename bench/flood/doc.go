// Package flood is a stratum v1 load generator: one process holds many
// thousands of simulated miners on a few gnet event loops (no goroutine per
// connection), has each subscribe, authorize and submit shares at a set
// rate, and measures what comes back: answers and their latency, rejections
// by code, and how long a mining.notify takes to reach every miner.
//
// It backs the bench/cmd/flood command and the benchmark suite, which calls
// Run in-process and reads the returned Summary.
//
// # Basics
//
//	sum, err := flood.Run(ctx, flood.Config{
//		Target:   "127.0.0.1:9332",
//		Miners:   18000,
//		Sources:  srcs, // flood.ParseSources("127.0.0.2-127.0.0.9")
//		User:     "NAME.rig%d",
//		Rate:     0.2,
//		Duration: time.Minute,
//	})
//
// Each miner, on its own connection:
//
//  1. mining.configure (Config.Configure: version rolling, mask 1fffe000)
//     and mining.subscribe, together on connect;
//  2. after the subscribe answer: mining.extranonce.subscribe
//     (Config.ExtranonceSubscribe) and mining.authorize with User ("%d"
//     becomes the miner's index) and Password;
//  3. once authorized and holding a job: mining.submit every 1/Rate seconds,
//     each interval jittered to [0.5, 1.5) of that, with a new extranonce2
//     for every share, until Duration.
//
// It follows mining.set_difficulty, mining.set_extranonce,
// mining.set_version_mask and mining.notify, answers mining.ping and
// client.get_version, and counts client.reconnect and client.show_message
// (it does not reconnect).
//
// Share modes: ModeBlind submits without hashing (unique extranonce2, random
// nonce, the job's ntime); ModeValid mines every share with sha256d
// (proxy/pow) in a bounded pool of hash workers off the event loops and
// submits only shares that meet the current difficulty. A simulator at
// difficulty 2^-32 (~2.3e-10) or less accepts every blind share; ModeValid
// needs a tiny difficulty such as 1e-6 (~4,300 hashes a share).
//
// Connections are dialed by a bounded pool of ConnectConcurrency goroutines
// with net.Dialer (bound round robin to Sources, so ephemeral ports do not run
// out), optionally paced by ConnectRate, then enrolled in a gnet client. A
// tick on each event loop every 10 ms submits the shares that are due.
//
// # Other dialects
//
// Config.Dialect (--dialect) set to a bench/dialectsim kind (cryptonote,
// ethstratum, ethproxy, kawpow, equihash, kheavyhash) floods in that
// dialect instead, simply: one goroutine per miner holding a
// dialectsim.Miner, which logs in the dialect's way and calls Mine(1)
// every 1/Rate seconds (same jitter) until Duration. Its shares use
// dialectsim's stand-in hash, so a dialectsim pool accepts every one that
// reaches it unaltered. The Summary is the same: connects and connect
// errors, a failed login handshake in handshake.authorize_rejected,
// answers and latency (share search of ~32 SHA-256s plus the round trip),
// rejections under "other", and shares.errors for miners whose Mine failed
// (such a miner stops). Sources are refused; the stratum-only settings do
// not apply (see Config.Dialect). This mode holds goroutines, not event
// loops: meant for hundreds or a few thousand miners, not 18,000.
//
// # Measurements
//
//   - Answer latency: from writing a submit to reading its answer, in a
//     fixed-size log-linear histogram (quantiles within ~3%).
//   - Notify fan-out: for each mining.notify arrival, the time since the
//     first miner of the flood received the same job id, counted only for
//     miners that were authorized before that first arrival (the job handed
//     to a miner at login is not a fan-out). With Config.NotifySentAt the
//     pool's own send time gives pool -> miner latency too.
//   - Counters: connects and connect errors by kind, handshake outcomes,
//     shares sent / accepted / rejected by code / unanswered, every
//     pool-to-miner message, hashing work, the process's RSS.
//
// # Caveats
//
// Run refuses a Target (or Sources) outside 127.0.0.0/8 and ::1 unless
// AllowRemote is set. It raises the soft RLIMIT_NOFILE to the hard limit and
// refuses, before dialing, a miner count that cannot fit (one descriptor per
// miner, two per dial in flight, plus ExtraFDs for an in-process pool).
//
// Duration counts from Run's start, the connect ramp included (Summary.RampS
// says how long that took and SteadySentPerSec leaves it out). After it Run
// waits at most Drain for outstanding answers, then closes everything: every
// loop of the flood is bounded in count or time.
//
// Setting Config.Logger replaces gnet's process-wide default logger, which
// other gnet engines in the same process (an in-process proxy) also use.
//
// # Measured
//
// On the 2-core development box (hard fd limit 20,000), the pool simulator
// in its own process (go run ./bench/cmd/poolsim -addr 127.0.0.1:39533
// -diff 1e-10 -notify 10s -mask 1fffe000) and
//
//	go run ./bench/cmd/flood --target 127.0.0.1:39533 --miners 18000 \
//	    --sources 127.0.0.2-127.0.0.9 --user NAME.rig%d --rate 0.2 \
//	    --duration 60s --configure --extranonce-subscribe
//
// held 18,000 miners (ramp 1.06 s, no connect errors or disconnects) in
// 46.6 MB RSS at about 10% of one core: 214,722 shares, all accepted
// (~3,600/s), answer latency p50 0.18 ms, p99 12.3 ms; notify fan-out to
// all 18,000 miners p50 47 ms, max 105 ms (the simulator's goroutine per
// connection sets that spread). At --rate 1: 18,000 shares/s, all
// accepted, p50 0.67 ms, p99 25 ms. 19,500 miners also fit (fd_need
// 19,834).
//
// # Command
//
// bench/cmd/flood wraps Run: flags map one to one onto Config fields
// (--target, --allow-remote, --miners, --sources, --connect-concurrency,
// --connect-rate, --connect-timeout, --user, --password, --user-agent,
// --configure, --extranonce-subscribe, --mode, --rate, --duration, --drain,
// --max-pending, --hash-workers, --hash-queue, --max-hashes, --event-loops,
// --dialect),
// a progress line goes to stderr every second and the Summary to stdout as
// JSON. See its -help.
package flood
