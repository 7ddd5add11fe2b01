package pin

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2 are argon2id cost parameters. Zero fields take the defaults.
type Argon2 struct {
	// Time is the number of passes. Defaults to 2.
	Time uint32
	// MemoryKiB is the memory per hash. Defaults to 47104 (46 MiB); at
	// least 8192. Concurrent checks each hold this much.
	MemoryKiB uint32
	// Threads is the parallelism. Defaults to 1.
	Threads uint8
}

// DefaultArgon2 costs 20-100 ms per check on a current server core (about
// 60 ms measured with BenchmarkVerifyDefault on a 2-core AMD EPYC VM, where
// t=3/64 MiB took 130-200 ms). It is OWASP's 46 MiB option with a second
// pass.
var DefaultArgon2 = Argon2{Time: 2, MemoryKiB: 46 * 1024, Threads: 1}

func (a Argon2) withDefaults() Argon2 {
	if a.Time == 0 {
		a.Time = DefaultArgon2.Time
	}
	if a.MemoryKiB == 0 {
		a.MemoryKiB = DefaultArgon2.MemoryKiB
	}
	if a.Threads == 0 {
		a.Threads = DefaultArgon2.Threads
	}
	return a
}

// weakerThan reports whether a hash made with a is cheaper in any
// dimension than one made with want: such a hash is rehashed on the next
// successful verification.
func (a Argon2) weakerThan(want Argon2) bool {
	return a.Time < want.Time || a.MemoryKiB < want.MemoryKiB || a.Threads < want.Threads
}

const (
	saltSize = 16
	keySize  = 32
	// Bounds on stored parameters, so a corrupted row cannot make one
	// check take gigabytes or minutes.
	maxMemoryKiB = 4 << 20
	maxTime      = 64
)

// phc is a parsed PHC string:
// $argon2id$v=19$m=<KiB>,t=<time>,p=<threads>$<salt>$<key>, base64 without
// padding as in the reference implementation.
type phc struct {
	params Argon2
	salt   []byte
	key    []byte
}

var b64 = base64.RawStdEncoding

// String encodes h as a PHC string, the form stored in the credential.
func (h phc) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.params.MemoryKiB, h.params.Time, h.params.Threads, b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

var errPHC = errors.New("pin: malformed argon2id hash")

func parsePHC(s string) (phc, error) {
	if len(s) > 256 {
		return phc{}, errPHC
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return phc{}, errPHC
	}
	var h phc
	for i, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		want := [...]string{"m", "t", "p"}
		if !ok || i > 2 || k != want[i] {
			return phc{}, errPHC
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return phc{}, errPHC
		}
		switch k {
		case "m":
			h.params.MemoryKiB = uint32(n)
		case "t":
			h.params.Time = uint32(n)
		case "p":
			if n > 255 {
				return phc{}, errPHC
			}
			h.params.Threads = uint8(n)
		}
	}
	p := h.params
	if p.Time < 1 || p.Time > maxTime || p.Threads < 1 || p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxMemoryKiB {
		return phc{}, errPHC
	}
	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil || len(h.salt) < 8 || len(h.salt) > 64 {
		return phc{}, errPHC
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return phc{}, errPHC
	}
	return h, nil
}

// hashPIN derives a new hash of pin with a fresh salt from rnd.
func hashPIN(pin string, p Argon2, rnd io.Reader) (phc, error) {
	salt := make([]byte, saltSize)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return phc{}, fmt.Errorf("pin: reading salt: %w", err)
	}
	return phc{params: p, salt: salt, key: argon2.IDKey([]byte(pin), salt, p.Time, p.MemoryKiB, p.Threads, keySize)}, nil
}

// matches recomputes the hash of pin with h's salt and parameters and
// compares in constant time.
func (h phc) matches(pin string) bool {
	k := argon2.IDKey([]byte(pin), h.salt, h.params.Time, h.params.MemoryKiB, h.params.Threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(k, h.key) == 1
}
