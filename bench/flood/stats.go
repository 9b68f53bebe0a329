package flood

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Connect error kinds; the names are the keys of Summary.Connect.Errors.
const (
	connErrRefused = iota
	connErrTimeout
	connErrAddrNotAvail
	connErrTooManyFiles
	connErrEnroll
	connErrOther
	numConnErr
)

var connErrNames = [numConnErr]string{"refused", "timeout", "addr_not_available", "too_many_files", "enroll", "other"}

// Rejection buckets: stratum codes 0..63 by number, then every other code,
// then a bare false result without an error.
const (
	rejCodes = 64
	rejOther = rejCodes
	rejFalse = rejCodes + 1
	numRej   = rejCodes + 2
)

func rejName(i int) string {
	switch i {
	case rejOther:
		return "other"
	case rejFalse:
		return "false"
	}
	return strconv.Itoa(i)
}

func rejIndex(code int) int {
	if code >= 0 && code < rejCodes {
		return code
	}
	return rejOther
}

// stats holds every counter of a flood. Safe for concurrent use: the event
// loops, dialers and hash workers update it with atomics.
type stats struct {
	// Gauges: miners currently in each state or beyond.
	connected, subscribed, authorized atomic.Int64
	peakConnected, peakAuthorized     atomic.Int64
	outstanding                       atomic.Int64 // submits sent and not answered

	dialAttempts, connects, disconnects atomic.Int64
	connErr                             [numConnErr]atomic.Int64
	subscribes, authorizes              atomic.Int64
	subscribeErrors, authorizeRejected  atomic.Int64
	configureGranted                    atomic.Int64

	sent, accepted, rejected    atomic.Int64
	rej                         [numRej]atomic.Int64
	unmatched                   atomic.Int64
	skippedBacklog, skippedLate atomic.Int64

	notifies, notifiesMeasured                    atomic.Int64
	setDifficulty, setExtranonce, setVersionMask  atomic.Int64
	reconnects, pings, getVersions, showMessages  atomic.Int64
	unknownMethods, protocolErrors, overlongLines atomic.Int64

	hashes, found, exhausted, queueFull, stale atomic.Int64

	mineErrors atomic.Int64 // Dialect miners: Mine ended in an error
}

func raiseMax(peak *atomic.Int64, v int64) {
	// Bounded: every failed CAS sees a larger peak.
	for p := peak.Load(); v > p && !peak.CompareAndSwap(p, v); p = peak.Load() {
	}
}

func (s *stats) rejectedByCode() map[string]int64 {
	out := make(map[string]int64)
	for i := range s.rej {
		if n := s.rej[i].Load(); n > 0 {
			out[rejName(i)] = n
		}
	}
	return out
}

// Progress is what Config.Progress receives every interval.
type Progress struct {
	// Elapsed is the time since Run started.
	Elapsed time.Duration
	// Connected, Subscribed and Authorized count the miners currently
	// connected, past mining.subscribe and past mining.authorize.
	Connected, Subscribed, Authorized int64
	// ConnectErrors counts failed dials so far.
	ConnectErrors int64
	// Sent, Accepted and Rejected count submits so far; Outstanding those
	// still unanswered.
	Sent, Accepted, Rejected, Outstanding int64
	// RejectedByCode splits Rejected by stratum error code ("23"), "other"
	// codes and "false" (a false result without an error).
	RejectedByCode map[string]int64
	// SentPerSec and AcceptedPerSec are rates over the last interval.
	SentPerSec, AcceptedPerSec float64
	// P50 and P99 are submit -> answer latency quantiles over the last
	// interval (zero without answers).
	P50, P99 time.Duration
}

// String formats p as the one-line progress report of the flood command.
func (p Progress) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6.1fs conn %d sub %d auth %d cerr %d | sent %d (%.0f/s) acc %d (%.0f/s) rej %d",
		p.Elapsed.Seconds(), p.Connected, p.Subscribed, p.Authorized, p.ConnectErrors,
		p.Sent, p.SentPerSec, p.Accepted, p.AcceptedPerSec, p.Rejected)
	if len(p.RejectedByCode) > 0 {
		keys := make([]string, 0, len(p.RejectedByCode))
		for k := range p.RejectedByCode {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(" [")
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s:%d", k, p.RejectedByCode[k])
		}
		b.WriteByte(']')
	}
	fmt.Fprintf(&b, " out %d | p50 %.2fms p99 %.2fms", p.Outstanding, ms(p.P50), ms(p.P99))
	return b.String()
}

// Summary is the outcome of a flood, printed as JSON by the flood command.
type Summary struct {
	Target string `json:"target"`
	// Dialect is Config.Dialect for the dialectsim miners; "" for
	// stratum v1.
	Dialect      string   `json:"dialect,omitempty"`
	Mode         Mode     `json:"mode"`
	Miners       int      `json:"miners"`
	Sources      []string `json:"sources,omitempty"`
	RatePerMiner float64  `json:"rate_per_miner"`

	// DurationS is the time from start until submitting stopped; RampS
	// until the last dial finished; DrainS the wait for answers after.
	DurationS float64 `json:"duration_s"`
	RampS     float64 `json:"ramp_s"`
	DrainS    float64 `json:"drain_s"`

	FDLimit uint64 `json:"fd_limit"`
	FDNeed  int    `json:"fd_need"`
	// RSSBytes and PeakRSSBytes are the process's VmRSS just before the
	// connections were closed and its VmHWM (an in-process pool counts too).
	RSSBytes     uint64 `json:"rss_bytes"`
	PeakRSSBytes uint64 `json:"peak_rss_bytes"`

	Connect   ConnectSummary   `json:"connect"`
	Handshake HandshakeSummary `json:"handshake"`
	Shares    ShareSummary     `json:"shares"`

	// AnswerLatency is submit -> answer, over the whole run.
	AnswerLatency Quantiles `json:"answer_latency"`
	// NotifyFanout is, per mining.notify arrival, the time since the first
	// miner of the flood received the same job id; only miners authorized
	// before that first arrival are measured (not the job handed over at
	// login).
	NotifyFanout Quantiles `json:"notify_fanout"`
	// NotifyLatency is pool send -> miner arrival for the same arrivals;
	// only with Config.NotifySentAt.
	NotifyLatency *Quantiles `json:"notify_latency,omitempty"`

	Messages MessageSummary `json:"messages"`
	Hashing  *HashSummary   `json:"hashing,omitempty"`
}

// ConnectSummary counts connections.
type ConnectSummary struct {
	Attempts      int64            `json:"attempts"`
	Connected     int64            `json:"connected"`
	PeakConnected int64            `json:"peak_connected"`
	Errors        map[string]int64 `json:"errors"`
	// Disconnects counts connections the target closed (or that failed)
	// before the flood's own shutdown.
	Disconnects int64 `json:"disconnects"`
}

// HandshakeSummary counts subscribe and authorize outcomes.
type HandshakeSummary struct {
	Subscribed        int64 `json:"subscribed"`
	SubscribeErrors   int64 `json:"subscribe_errors"`
	Authorized        int64 `json:"authorized"`
	PeakAuthorized    int64 `json:"peak_authorized"`
	AuthorizeRejected int64 `json:"authorize_rejected"`
	ConfigureGranted  int64 `json:"configure_granted"`
}

// ShareSummary counts submits and their answers.
type ShareSummary struct {
	Sent           int64            `json:"sent"`
	Accepted       int64            `json:"accepted"`
	Rejected       int64            `json:"rejected"`
	RejectedByCode map[string]int64 `json:"rejected_by_code"`
	// Unanswered submits were still waiting when the drain ended.
	Unanswered int64 `json:"unanswered"`
	// Unmatched answers carried an id no submit was waiting for.
	Unmatched int64 `json:"unmatched"`
	// SkippedBacklog shares were due while MaxPending submits (or, in
	// valid mode, a share being hashed or a full hash queue) were waiting;
	// SkippedLate were due while the event loop lagged a whole burst.
	SkippedBacklog int64 `json:"skipped_backlog"`
	SkippedLate    int64 `json:"skipped_late"`
	// Errors counts Dialect miners whose Mine ended in a transport error
	// or a timeout (each such miner then stops); always 0 for stratum v1.
	Errors int64 `json:"errors,omitempty"`
	// SentPerSec and AcceptedPerSec average over DurationS;
	// SteadySentPerSec over the time after the ramp.
	SentPerSec       float64 `json:"sent_per_s"`
	AcceptedPerSec   float64 `json:"accepted_per_s"`
	SteadySentPerSec float64 `json:"steady_sent_per_s"`
}

// MessageSummary counts what the target sent besides answers.
type MessageSummary struct {
	Notifies         int64 `json:"notifies"`
	NotifiesMeasured int64 `json:"notifies_measured"`
	SetDifficulty    int64 `json:"set_difficulty"`
	SetExtranonce    int64 `json:"set_extranonce"`
	SetVersionMask   int64 `json:"set_version_mask"`
	Reconnects       int64 `json:"client_reconnect"`
	Pings            int64 `json:"ping"`
	GetVersion       int64 `json:"get_version"`
	ShowMessage      int64 `json:"show_message"`
	Unknown          int64 `json:"unknown"`
	ProtocolErrors   int64 `json:"protocol_errors"`
	OverlongLines    int64 `json:"overlong_lines"`
}

// HashSummary counts ModeValid mining work.
type HashSummary struct {
	Hashes    int64 `json:"hashes"`
	Found     int64 `json:"found"`
	Exhausted int64 `json:"exhausted"`
	QueueFull int64 `json:"queue_full"`
	// Stale shares were found after their miner's job changed and dropped.
	Stale int64 `json:"stale"`
}
