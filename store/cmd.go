package store

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Usage lists the operator subcommands Command understands.
const Usage = `usage:
  pool add HOST:PORT ALGORITHM [--mode=split|passthrough] [--extranonce2-size=N] [--tls [--tls-fingerprint=SHA256 | --tls-insecure]]
  pool list
  pool delete HOST:PORT
  algo list
  algo delete NAME
  user list
  user delete NAME
  user passwd NAME        (the new password is read from standard input)
While the proxy runs it holds the store: use its management API (/api/v1) then.`

// ErrUsage is returned (wrapped, with Usage) for an unknown subcommand or
// malformed arguments.
var ErrUsage = errors.New("store: bad command")

// Command runs an operator subcommand against st and writes its output to
// w: "pool add", "pool list", "algo list" or "user list" (see Usage).
// Listings are tab-aligned tables with a header row. "user list" never
// prints passwords. Errors from bad arguments wrap ErrUsage and include
// Usage.
func Command(st Store, args []string, w io.Writer) error {
	return CommandIn(st, args, nil, w)
}

// CommandIn is Command with in as standard input ("user passwd" reads the
// new password from it, so it never shows in a shell's history).
func CommandIn(st Store, args []string, in io.Reader, w io.Writer) error {
	if len(args) < 2 {
		return usageError("missing subcommand")
	}
	one := func() (string, error) {
		if len(args) != 3 {
			return "", usageError(args[0] + " " + args[1] + " takes one argument")
		}
		return args[2], nil
	}
	switch cmd := args[0] + " " + args[1]; cmd {
	case "pool add":
		return poolAdd(st, args[2:], w)
	case "pool delete", "algo delete", "user delete":
		arg, err := one()
		if err != nil {
			return err
		}
		switch args[0] {
		case "pool":
			err = st.DeletePool(arg)
		case "algo":
			err = st.DeleteAlgorithm(arg)
		default:
			err = st.DeleteUser(arg)
		}
		if err == nil {
			fmt.Fprintf(w, "deleted %s %s\n", args[0], arg)
		}
		return err
	case "user passwd":
		name, err := one()
		if err != nil {
			return err
		}
		if in == nil {
			return usageError("user passwd reads the password from standard input")
		}
		b, err := io.ReadAll(io.LimitReader(in, MaxFieldLen+2))
		if err != nil {
			return err
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if err := st.SetPassword(name, Secret(pw)); err != nil {
			return err
		}
		fmt.Fprintf(w, "password of %s changed\n", name)
		return nil
	case "pool list", "algo list", "user list":
		if len(args) > 2 {
			return usageError(fmt.Sprintf("%s takes no arguments, got %q", cmd, strings.Join(args[2:], " ")))
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		switch args[0] {
		case "pool":
			poolList(st, tw)
		case "algo":
			algoList(st, tw)
		default:
			userList(st, tw)
		}
		return tw.Flush()
	default:
		return usageError(fmt.Sprintf("unknown subcommand %q", cmd))
	}
}

func usageError(msg string) error {
	return fmt.Errorf("%w: %s\n%s", ErrUsage, msg, Usage)
}

// poolAdd parses "HOST:PORT ALGORITHM [flags]"; flags may come anywhere
// and take "--name=value" or "--name value".
func poolAdd(st Store, args []string, w io.Writer) error {
	var p Pool
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		needVal := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(args) {
				return "", usageError("--" + name + " needs a value")
			}
			i++
			return args[i], nil
		}
		switch name {
		case "mode":
			v, err := needVal()
			if err != nil {
				return err
			}
			p.Mode = v
		case "extranonce2-size":
			v, err := needVal()
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return usageError(fmt.Sprintf("--extranonce2-size %q is not a number", v))
			}
			p.Extranonce2Size = n
		case "tls":
			p.TLS = true
			if hasVal {
				b, err := strconv.ParseBool(val)
				if err != nil {
					return usageError(fmt.Sprintf("--tls=%q is not a boolean", val))
				}
				p.TLS = b
			}
		case "tls-fingerprint":
			v, err := needVal()
			if err != nil {
				return err
			}
			p.TLSFingerprint = v
		case "tls-insecure":
			p.TLSInsecure = true
		default:
			return usageError(fmt.Sprintf("unknown flag %q", a))
		}
	}
	if len(pos) != 2 {
		return usageError("pool add needs HOST:PORT and ALGORITHM")
	}
	p.Addr, p.Algorithm = pos[0], pos[1]
	if err := st.PutPool(p); err != nil {
		return err
	}
	saved, _ := st.Pool(p.Addr)
	_, err := fmt.Fprintf(w, "pool %s saved (algorithm %s, mode %s, extranonce2 size %s, tls %t)\n",
		saved.Addr, saved.Algorithm, modeOrDefault(saved.Mode), sizeOrUnknown(saved.Extranonce2Size), saved.TLS)
	return err
}

func poolList(st Store, w io.Writer) {
	fmt.Fprintln(w, "ADDR\tALGORITHM\tMODE\tEXTRANONCE2\tTLS")
	for _, p := range st.Pools() {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%t\n", p.Addr, p.Algorithm, modeOrDefault(p.Mode), sizeOrUnknown(p.Extranonce2Size), p.TLS)
	}
}

func algoList(st Store, w io.Writer) {
	fmt.Fprintln(w, "NAME\tDIVIDER\tDIALECTS\tALIASES")
	for _, a := range st.Algorithms() {
		aliases := strings.Join(a.Aliases, ",")
		if aliases == "" {
			aliases = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", a.Name, strconv.FormatFloat(a.Divider, 'f', -1, 64), strings.Join(a.Dialects, ","), aliases)
	}
}

// userList prints users without any password: only pools and logins.
func userList(st Store, w io.Writer) {
	fmt.Fprintln(w, "NAME\tPOOL\tUSER\tBACKUPS\tCREATED\tLAST SEEN")
	for _, u := range st.Users() {
		backups := make([]string, len(u.Backups))
		for i, b := range u.Backups {
			backups[i] = b.User + "@" + b.Pool
		}
		bs := strings.Join(backups, ",")
		if bs == "" {
			bs = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, u.Pool, u.User, bs, timeOrNever(u.Created), timeOrNever(u.LastSeen))
	}
}

func modeOrDefault(m string) string {
	if m == "" {
		return "default"
	}
	return m
}

func sizeOrUnknown(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func timeOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
