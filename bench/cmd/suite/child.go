package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// event is one JSON line a child role writes on stdout:
// {"ev":"progress","t":...,"data":{...}}.
type event struct {
	Ev   string          `json:"ev"`
	At   int64           `json:"t"` // unix nanoseconds when the child wrote it
	Data json.RawMessage `json:"data,omitempty"`
}

// maxEvents bounds the events kept per child: a minute of progress lines
// is ~60, a fan-out run ~20 notify lines; older ones are dropped.
const maxEvents = 4096

// proc is one child process of the suite: a role of this binary (pool,
// flood, proxy harness) or the proxy binary.
type proc struct {
	// Static after start.
	name    string
	argv    []string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	logPath string

	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done

	mu       sync.Mutex // guards the fields below
	events   []event
	changed  chan struct{} // closed and replaced on every new event or line
	lines    int           // stderr lines seen
	warnings []string      // stderr lines that look like warnings or errors (last few)
}

// procSet tracks every child so that they can all be stopped at the end, on
// an error or on Ctrl-C. Safe for concurrent use.
type procSet struct {
	mu    sync.Mutex
	procs []*proc
}

// stderrMatcher lets the proxy's stderr reader recognise its log lines.
type stderrMatcher func(p *proc, line string)

// start runs argv as a child. Its stdout is parsed as JSON events (roles) and
// its stderr is copied to logPath, each line also passed to onStderr.
// The child gets its own process group (Ctrl-C in the terminal reaches only
// the suite, which stops the children in order) and SIGKILL if the suite
// dies; its soft RLIMIT_NOFILE is raised to the hard limit.
func (ps *procSet) start(name string, argv []string, dir, logPath string, onStderr stderrMatcher) (*proc, error) {
	p := &proc{name: name, argv: argv, logPath: logPath, done: make(chan struct{}), changed: make(chan struct{})}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Env = os.Environ()
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		logf.Close()
		return nil, err
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.cmd = cmd
	ps.procs = append(ps.procs, p)
	raiseNoFile(cmd.Process.Pid)

	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		p.readEvents(stdout, logf)
	}()
	go func() {
		defer readers.Done()
		p.readStderr(stderr, logf, onStderr)
	}()
	go func() {
		readers.Wait()
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
		p.mu.Lock()
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}()
	return p, nil
}

// raiseNoFile raises a child's soft RLIMIT_NOFILE to its hard limit. Go
// children do it themselves at start; this covers the window before and
// any child that does not.
func raiseNoFile(pid int) {
	var rl unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &rl); err != nil {
		return
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = unix.Prlimit(pid, unix.RLIMIT_NOFILE, &rl, nil)
	}
}

// raiseOwnNoFile does the same for the suite's own process.
func raiseOwnNoFile() {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	}
}

// maxLine bounds one line read from a child (a flood summary is ~3 KiB).
const maxLine = 1 << 20

func (p *proc) readEvents(r io.Reader, logf *os.File) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Ev == "" {
			p.mu.Lock()
			fmt.Fprintf(logf, "stdout: %s\n", sc.Bytes())
			p.mu.Unlock()
			continue
		}
		p.mu.Lock()
		if len(p.events) >= maxEvents {
			p.events = append(p.events[:0], p.events[len(p.events)-maxEvents/2:]...)
		}
		p.events = append(p.events, ev)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

// maxWarnings is how many warning lines of a child are kept for the report.
const maxWarnings = 20

func (p *proc) readStderr(r io.Reader, logf *os.File, onStderr stderrMatcher) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		fmt.Fprintln(logf, line)
		p.lines++
		// The API's start-up warning about a missing auth token is expected
		// on a benchmark's loopback proxy.
		if looksBad(line) && !strings.Contains(line, "no auth token") {
			if len(p.warnings) >= maxWarnings {
				p.warnings = p.warnings[1:]
			}
			p.warnings = append(p.warnings, line)
		}
		p.mu.Unlock()
		if onStderr != nil {
			onStderr(p, line)
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// looksBad spots warning, error and panic lines in a child's stderr (the
// proxy's JSON logs and Go's own crash output).
func looksBad(line string) bool {
	return strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) ||
		strings.Contains(line, `"level":"fatal"`) || strings.Contains(line, `"level":"panic"`) ||
		strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") ||
		strings.Contains(line, "gnet: error") || strings.HasPrefix(line, "suite:")
}

// post records an event produced by the suite itself (the proxy's
// "serving" log line), waking waiters.
func (p *proc) post(ev event) {
	p.mu.Lock()
	p.events = append(p.events, ev)
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// send writes one command line to the child's stdin.
func (p *proc) send(cmd string) error {
	_, err := io.WriteString(p.stdin, cmd+"\n")
	if err != nil {
		return fmt.Errorf("%s: send %q: %w", p.name, cmd, err)
	}
	return nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitDesc describes how the process ended ("" while it runs).
func (p *proc) exitDesc() string {
	if !p.exited() {
		return ""
	}
	if p.waitErr == nil {
		return "exit status 0"
	}
	return p.waitErr.Error()
}

// errExited is returned by waits when the child ended first.
var errExited = errors.New("child exited")

// waitEvent waits up to timeout for the first event named ev, at index >=
// from, for which match (nil: any) is true; it returns the event and its
// index. It fails early if ctx ends or the child exits.
func (p *proc) waitEvent(ctx context.Context, ev string, from int, timeout time.Duration, match func(event) bool) (event, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	// Bounded: each round either finds the event or blocks until a new event,
	// the child's exit, ctx or the deadline.
	for {
		p.mu.Lock()
		for i := from; i < len(p.events); i++ {
			e := p.events[i]
			if e.Ev == ev && (match == nil || match(e)) {
				p.mu.Unlock()
				return e, i, nil
			}
		}
		from = max(from, len(p.events))
		ch := p.changed
		p.mu.Unlock()
		if p.exited() {
			// One more scan happened above after the last event arrived.
			return event{}, from, fmt.Errorf("%s: waiting for %q: %w (%s; log %s)", p.name, ev, errExited, p.exitDesc(), p.logPath)
		}
		select {
		case <-ctx.Done():
			return event{}, from, ctx.Err()
		case <-deadline.C:
			return event{}, from, fmt.Errorf("%s: no %q event within %s (log %s)", p.name, ev, timeout, p.logPath)
		case <-ch:
		}
	}
}

// eventCount returns the number of events so far (an index for waitEvent).
func (p *proc) eventCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.events)
}

// eventsNamed returns a copy of the events named ev.
func (p *proc) eventsNamed(ev string) []event {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []event
	for _, e := range p.events {
		if e.Ev == ev {
			out = append(out, e)
		}
	}
	return out
}

// warningLines returns the last warning lines of the child's stderr.
func (p *proc) warningLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.warnings...)
}

// stop ends the process: roles are told with EOF on stdin (and the
// proxy with SIGTERM), then after grace SIGKILL goes to the whole process
// group. It returns false if the process needed SIGKILL.
func (p *proc) stop(grace time.Duration, term bool) bool {
	if p.exited() {
		return true
	}
	_ = p.stdin.Close()
	if term {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	k := time.NewTimer(10 * time.Second)
	defer k.Stop()
	select {
	case <-p.done:
	case <-k.C:
	}
	return false
}

// stopAll kills every child still running: the cleanup path on errors and
// Ctrl-C. Children get SIGTERM, then SIGKILL after 3 seconds.
func (ps *procSet) stopAll() {
	ps.mu.Lock()
	procs := append([]*proc(nil), ps.procs...)
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		if p.exited() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(3*time.Second, true)
		}()
	}
	wg.Wait()
}

// rssBytes returns a process's VmRSS from /proc/PID/status.
func rssBytes(pid int) (uint64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseUint(f[0], 10, 64)
				if err != nil {
					return 0, err
				}
				return kb << 10, nil
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// fdCount counts a process's open descriptors.
func fdCount(pid int) int {
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		return -1
	}
	return len(ents)
}

// cmdline renders argv for a shell, quoting what needs it.
func cmdline(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~!") {
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}
