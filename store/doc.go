/*
Package store keeps the proxy's tables: the algorithms it knows, the pools
miners may be sent to, and the users (issued names) that map a miner's
login to a pool account and its backups.

# Basics

Every caller goes through the Store interface; DB is its bbolt
implementation, so another backend (an etcd cluster store) can replace it.
Open a database with Open; nil Options mean defaults:

	st, err := store.Open("./data/proxy.db", nil)
	if err != nil {
		return err // errors.Is(err, store.ErrLocked) if another process has it
	}
	defer st.Close()

	name, outcome, err := st.RegisterUser(
		store.Account{Pool: "btc.f2pool.com:3333", User: "acct.rig1", Password: "x"}, nil)

	u, ok := st.User(name)               // from memory, never from disk
	pass := u.Password.Reveal()          // only where it goes to the pool

Open creates the file and its directory, and on first start seeds the
algorithm and pool tables from seed.json, which is embedded in the binary
(see Seed). The file holds four buckets: meta (schema version and key
check), algorithms, pools and users, with JSON values keyed by name,
address and issued name.

Reads (Algorithm, Pools, User, ...) come from an immutable in-memory
snapshot held in an atomic pointer: they take no lock, never touch disk
and never wait for a writer, so the proxy's event loops may call them.
Every successful write commits a bbolt transaction, which fsyncs, and then
publishes a new snapshot; when RegisterUser or PutPool returns, the change
survives kill -9 and power loss, and every later read sees it.

Touch, which the proxy calls on every authorize, only records the time in
a small buffer; a background goroutine writes the buffer every few seconds
(Options.TouchInterval) and Close writes what is left.

Names are 16 lower-case hex characters from crypto/rand. Registering the
same primary (pool, user, password) again returns the existing name; a
backup list given with it replaces the stored one (RegisterUpdated), nil
backups keep it.

Algorithm names are canonical ("sha256", the `hash` label value the
original proxy's dashboards use); aliases such as "sha256d" resolve to
them. Pool addresses are normalised (lower-case host, decimal port).

# Passwords at rest

Pool passwords are encrypted with AES-256-GCM under a key kept in a key
file beside the database (proxy.key, created with mode 0600 on first
start; Options.KeyFile moves it). Each ciphertext is bound to its user and
position, so records cannot be swapped in the file. Duplicate detection
uses an HMAC-SHA256 of (pool, user, password) under a key derived from the
same file, so finding an existing registration never compares plaintext.
Open verifies that the key file is the one the database was created with.

Threat model: this protects a copied or leaked database file (a backup, a
volume snapshot) on its own. An attacker who has both the database and the
key file has the passwords: the proxy must send each password to its pool,
so storing only a hash is impossible, and whatever the proxy can decrypt,
someone with its files can too. Keep the key file out of backups of the
database, or back it up separately. Passwords are in plain text in the
proxy's memory. Secret keeps them out of logs and listings by accident;
it does not stop code that calls Reveal.

# Caveats

The database file is locked by one process at a time. A second Open,
including a CLI subcommand run beside a live proxy, fails after
Options.Timeout (1s) with ErrLocked. bbolt's lock belongs to the open file,
so a second Open of the same file in the same process blocks too.

Losing the key file makes the stored passwords unrecoverable: Open refuses
to start rather than create a new key for an existing database.

A write copies the snapshot's maps it changes, which costs O(users) per
registration and per Touch flush: fine for tens of thousands of users,
not meant for millions.

User.LastSeen lags Touch by up to the flush interval, and a crash loses
the times not yet flushed.

A database written by a newer schema is refused (ErrSchemaTooNew) rather
than misread.
*/
package store
