package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// configFlag is the value of --config FILE: setting it reads FILE, one
// `key = value` per line with the flag names as keys, into the flags of
// fs. Precedence is command line > environment > file > defaults:
//
//   - a flag already on the command line (fs.Visit: parsed before
//     --config) is left alone, and one after --config is parsed later
//     and overwrites the file's value;
//   - a flag whose STRATUM_PROXY_* variable is set is left alone, for
//     parseFlags to set from the environment;
//   - the file sets a flag through its Value, not fs.Set, so parseFlags
//     still sees it as not given on the command line and the environment
//     wins over it.
//
// The same holds for STRATUM_PROXY_CONFIG, which parseFlags hands here
// like any other variable.
type configFlag struct {
	fs   *flag.FlagSet
	path string
}

func (c *configFlag) String() string {
	if c == nil {
		return ""
	}
	return c.path
}

func (c *configFlag) Set(path string) error {
	if c.path != "" {
		return fmt.Errorf("a second config file (%s after %s): give one", path, c.path)
	}
	c.path = path
	return loadConfig(c.fs, path)
}

// loadConfig reads the config file at path into the flags of fs (see
// configFlag). Lines are `key = value`, blank, or comments starting
// with #. A value is taken as written after trimming, up to a " #" that
// starts a trailing comment; a double-quoted value is a Go string
// literal (for an empty value, or one holding " #"). Every mistake is
// an error naming the file, the line and the key: an unknown key, a key
// given twice, a value the flag refuses, and the keys config and
// version, which do not belong in a file.
func loadConfig(fs *flag.FlagSet, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		key, value, ok, err := configLine(sc.Text())
		if err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if !ok {
			continue
		}
		fl := fs.Lookup(key)
		switch {
		case fl == nil:
			return fmt.Errorf("%s:%d: unknown key %q", path, n, key)
		case key == "config":
			return fmt.Errorf("%s:%d: %q cannot be set in a config file", path, n, key)
		case key == "version":
			return fmt.Errorf("%s:%d: %q is not a setting (it prints the version and exits)", path, n, key)
		case seen[key] != 0:
			return fmt.Errorf("%s:%d: key %q given twice (first on line %d)", path, n, key, seen[key])
		}
		seen[key] = n
		if onCommandLine[key] {
			continue
		}
		if _, ok := os.LookupEnv(envName(key)); ok {
			continue
		}
		if err := fl.Value.Set(value); err != nil {
			return fmt.Errorf("%s:%d: %s = %q: %w", path, n, key, value, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// configLine splits one line of a config file. ok is false for a blank
// line or a comment.
func configLine(line string) (key, value string, ok bool, err error) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return "", "", false, nil
	}
	key, value, found := strings.Cut(line, "=")
	key = strings.TrimSpace(key)
	if !found {
		return "", "", false, fmt.Errorf("%q: want key = value", line)
	}
	if key == "" || strings.HasPrefix(key, "-") || strings.ContainsAny(key, " \t") {
		return "", "", false, fmt.Errorf("bad key %q (want a flag name without dashes, e.g. web.addr)", key)
	}
	value = strings.TrimSpace(value)
	if strings.HasPrefix(value, `"`) {
		// A quoted value, then nothing or a comment.
		q, err := strconv.QuotedPrefix(value)
		if err != nil {
			return "", "", false, fmt.Errorf("%s: bad quoted value %s", key, value)
		}
		rest := strings.TrimSpace(value[len(q):])
		if rest != "" && !strings.HasPrefix(rest, "#") {
			return "", "", false, fmt.Errorf("%s: text after the quoted value: %q", key, rest)
		}
		value, err = strconv.Unquote(q)
		if err != nil {
			return "", "", false, fmt.Errorf("%s: bad quoted value %s: %w", key, q, err)
		}
		return key, value, true, nil
	}
	if i := strings.Index(value, " #"); i >= 0 {
		value = value[:i]
	}
	if i := strings.Index(value, "\t#"); i >= 0 {
		value = value[:i]
	}
	return key, strings.TrimSpace(value), true, nil
}
