package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// keySize is the master key length: 256 bits for AES-256 and HMAC-SHA256.
const keySize = 32

// HKDF labels separating the two subkeys derived from the master key, so
// the encryption key and the MAC key are independent.
const (
	infoSeal   = "stratum-proxy/store/v1 password encryption"
	infoDedupe = "stratum-proxy/store/v1 account dedupe mac"
	keyCheck   = "stratum-proxy/store/v1 key check"
)

// keys holds the subkeys derived from the key file. Static after Open.
type keys struct {
	aead cipher.AEAD // AES-256-GCM, seals passwords at rest
	mac  []byte      // HMAC-SHA256 key for dedupe digests and the key check
}

// newKeys derives the subkeys from a master key.
func newKeys(master []byte) (*keys, error) {
	sealKey, err := hkdf.Key(sha256.New, master, nil, infoSeal, keySize)
	if err != nil {
		return nil, err
	}
	macKey, err := hkdf.Key(sha256.New, master, nil, infoDedupe, keySize)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &keys{aead: aead, mac: macKey}, nil
}

// seal encrypts a password. The additional data binds the ciphertext to
// its record and position, so ciphertexts cannot be swapped between users
// in the file. The result is nonce || ciphertext+tag.
func (k *keys) seal(password, ad string) []byte {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(password)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("store: crypto/rand failed: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return k.aead.Seal(nonce, nonce, []byte(password), []byte(ad))
}

// open decrypts what seal produced.
func (k *keys) open(sealed []byte, ad string) (string, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return "", errors.New("sealed password too short")
	}
	plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], []byte(ad))
	if err != nil {
		return "", errors.New("password does not decrypt (wrong key file or corrupt record)")
	}
	return string(plain), nil
}

// dedupe returns the MAC of an account's (pool, user, password) triple:
// equal triples give equal digests, and the digest reveals nothing about
// the password without the key. Fields are length-prefixed so ("a","bc")
// and ("ab","c") differ.
func (k *keys) dedupe(a Account) string {
	m := hmac.New(sha256.New, k.mac)
	for _, f := range []string{a.Pool, a.User, a.Password.Reveal()} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		m.Write(n[:])
		m.Write([]byte(f))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// check returns the value recorded in the meta bucket to recognise the
// key file on the next Open.
func (k *keys) check() []byte {
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte(keyCheck))
	return m.Sum(nil)
}

// readKeyFile reads a key file: 64 hex characters, optionally followed by
// a newline. It returns fs.ErrNotExist (wrapped) if the file is missing.
func readKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != keySize {
		return nil, fmt.Errorf("key file %s: want %d hex characters", path, 2*keySize)
	}
	return key, nil
}

// createKeyFile writes a new random key to path with mode 0600, failing
// if the file already exists, and syncs it and its directory so the key
// survives a crash as surely as the database that needs it.
func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	return key, nil
}

// loadOrCreateKey returns the key in path, creating the file if it does
// not exist yet.
func loadOrCreateKey(path string) ([]byte, error) {
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKeyFile(path)
		if errors.Is(err, fs.ErrExist) { // lost a race with another creator
			key, err = readKeyFile(path)
		}
	}
	return key, err
}

// syncDir fsyncs a directory so a newly created entry in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
