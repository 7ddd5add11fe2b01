package keyring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/stepup-bridge/stepup-bridge/config"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func mustRing(t *testing.T, keys ...Key) *Keyring {
	t.Helper()
	r, err := New(keys, Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	r := mustRing(t, Key{ID: "k1", Key: key(1)})
	b := Binding{UserID: "u1", Factor: "totp"}
	for _, pt := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("secret"), 100)} {
		ct, err := r.Encrypt(pt, b)
		if err != nil {
			t.Fatalf("Encrypt: %v", err)
		}
		if len(pt) > 0 && bytes.Contains(ct, pt) {
			t.Fatalf("ciphertext contains the plaintext")
		}
		got, err := r.Decrypt(ct, b)
		if err != nil {
			t.Fatalf("Decrypt: %v", err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("round trip = %q, want %q", got, pt)
		}
	}
	c1, _ := r.Encrypt([]byte("same"), b)
	c2, _ := r.Encrypt([]byte("same"), b)
	if bytes.Equal(c1, c2) {
		t.Fatal("two encryptions of one plaintext are equal: nonce reused")
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	b := Binding{UserID: "u1", Factor: "totp"}
	old := mustRing(t, Key{ID: "old", Key: key(1)})
	ct, err := old.Encrypt([]byte("s3cret"), b)
	if err != nil {
		t.Fatal(err)
	}
	rotated := mustRing(t, Key{ID: "new", Key: key(2)}, Key{ID: "old", Key: key(1)})
	got, err := rotated.Decrypt(ct, b)
	if err != nil || string(got) != "s3cret" {
		t.Fatalf("old ciphertext under rotated ring = %q, %v", got, err)
	}
	if !rotated.NeedsRotation(ct) {
		t.Fatal("NeedsRotation(old ciphertext) = false")
	}
	ct2, err := rotated.Encrypt(got, b)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := KeyID(ct2); id != "new" {
		t.Fatalf("KeyID of new ciphertext = %q, want new", id)
	}
	if rotated.NeedsRotation(ct2) {
		t.Fatal("NeedsRotation(new ciphertext) = true")
	}
	// Old key removed: the old ciphertext no longer opens, and says why.
	onlyNew := mustRing(t, Key{ID: "new", Key: key(2)})
	if _, err := onlyNew.Decrypt(ct, b); !errors.Is(err, ErrDecrypt) || !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Decrypt with removed key: %v, want ErrDecrypt and ErrUnknownKey", err)
	}
	// Same id, different key material: authentication fails.
	impostor := mustRing(t, Key{ID: "old", Key: key(9)})
	if _, err := impostor.Decrypt(ct, b); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Decrypt with wrong key under the same id: %v", err)
	}
}

func TestTampering(t *testing.T) {
	t.Parallel()
	r := mustRing(t, Key{ID: "k1", Key: key(1)}, Key{ID: "k2", Key: key(2)})
	b := Binding{UserID: "u1", Factor: "totp"}
	ct, err := r.Encrypt([]byte("twenty byte secret!!"), b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x01
		if _, err := r.Decrypt(bad, b); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("flipping a bit of byte %d: err = %v, want ErrDecrypt", i, err)
		}
	}
	for n := range len(ct) {
		if _, err := r.Decrypt(ct[:n], b); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrDecrypt", n, err)
		}
	}
	// Relabel the key id k1 -> k2 (same length): must not open.
	relabelled := bytes.Clone(ct)
	copy(relabelled[2:4], "k2")
	if _, err := r.Decrypt(relabelled, b); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("relabelled key id: %v", err)
	}
}

func TestWrongBinding(t *testing.T) {
	t.Parallel()
	r := mustRing(t, Key{ID: "k1", Key: key(1)})
	ct, err := r.Encrypt([]byte("secret"), Binding{UserID: "alice", Factor: "totp"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    Binding
	}{
		{"other user", Binding{UserID: "bob", Factor: "totp"}},
		{"other factor", Binding{UserID: "alice", Factor: "hotp"}},
		{"fields shifted", Binding{UserID: "alicet", Factor: "otp"}},
		{"empty", Binding{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.Decrypt(ct, tc.b); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Decrypt with %+v: %v, want ErrDecrypt", tc.b, err)
			}
		})
	}
}

func TestNewRefusesBadKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		keys []Key
	}{
		{"empty", nil},
		{"short key", []Key{{ID: "a", Key: make([]byte, 16)}}},
		{"empty id", []Key{{ID: "", Key: key(1)}}},
		{"duplicate", []Key{{ID: "a", Key: key(1)}, {ID: "a", Key: key(2)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.keys, Options{}); err == nil {
				t.Fatal("New accepted bad keys")
			}
		})
	}
}

func TestFromConfig(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Secrets.EncryptionKeys = []config.Secret{
		config.Secret("new:" + base64.StdEncoding.EncodeToString(key(2))),
		config.Secret("old:" + base64.StdEncoding.EncodeToString(key(1))),
	}
	cfg.Secrets.Pepper = config.Secret(base64.StdEncoding.EncodeToString(key(3)))
	r, err := FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.PrimaryKeyID() != "new" {
		t.Fatalf("primary = %q, want new (first key encrypts)", r.PrimaryKeyID())
	}
	p, err := PepperFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	direct, _ := NewPepper(key(3))
	if !Equal(p.MAC([]byte("a")), direct.MAC([]byte("a"))) {
		t.Fatal("pepper from config differs from the decoded bytes")
	}
}

func TestPepper(t *testing.T) {
	t.Parallel()
	if _, err := NewPepper(make([]byte, 31)); err == nil {
		t.Fatal("NewPepper accepted 31 bytes")
	}
	p, err := NewPepper(key(7))
	if err != nil {
		t.Fatal(err)
	}
	// RFC 4231-style check against an independent construction: HMAC over
	// the concatenation equals HMAC over the parts.
	if !Equal(p.MAC([]byte("salt"), []byte("code")), p.MAC([]byte("saltcode"))) {
		t.Fatal("MAC(parts) != MAC(concatenation)")
	}
	q, _ := NewPepper(key(8))
	if Equal(p.MAC([]byte("x")), q.MAC([]byte("x"))) {
		t.Fatal("different peppers give the same MAC")
	}
	if len(p.MAC()) != 32 {
		t.Fatal("MAC is not 32 bytes")
	}
}

func FuzzDecrypt(f *testing.F) {
	// A pinned nonce source: every fuzzing worker process must build the
	// same genuine ciphertext as the seed corpus holds.
	r, err := New([]Key{{ID: "k1", Key: key(1)}}, Options{Rand: bytes.NewReader(make([]byte, nonceSize))})
	if err != nil {
		f.Fatal(err)
	}
	b := Binding{UserID: "u", Factor: "totp"}
	ct, _ := r.Encrypt([]byte("secret"), b)
	f.Add(ct)
	f.Add([]byte{1, 2, 'k', '1'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		pt, err := r.Decrypt(data, b)
		if err == nil && !bytes.Equal(data, ct) {
			// Only a genuine ciphertext may open; a forgery would be a bug.
			t.Fatalf("forged ciphertext %x opened to %q", data, pt)
		}
		if err != nil && !errors.Is(err, ErrDecrypt) {
			t.Fatalf("error does not wrap ErrDecrypt: %v", err)
		}
	})
}
