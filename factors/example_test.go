package factors_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/factors/backupcodes"
	"github.com/stepup-bridge/stepup-bridge/factors/internal/factortest"
	"github.com/stepup-bridge/stepup-bridge/internal/keyring"
)

// An HTTP handler stays thin: one call to the registry, one switch over
// the errors callers branch on.
func ExampleRegistry_Verify() {
	ctx := context.Background()
	st := factortest.NewMem() // in production: the sqlite or postgres store
	clock := factortest.NewClock()
	pepper, err := keyring.NewPepper([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		log.Fatal(err)
	}
	codes, err := backupcodes.New(backupcodes.Config{Now: clock.Now}, st, pepper)
	if err != nil {
		log.Fatal(err)
	}
	reg, err := factors.NewRegistry(factors.RegistryConfig{
		Enabled: []string{factors.BackupCode}, UserFailuresPerHour: 2,
		Counters: st, Audit: st, Now: clock.Now,
	}, codes)
	if err != nil {
		log.Fatal(err)
	}
	enr, err := reg.Enrol(ctx, factors.BackupCode, "alice", factors.EnrolRequest{}, factors.Meta{})
	if err != nil {
		log.Fatal(err)
	}
	meta := factors.Meta{SessionID: "sid", IP: "192.0.2.1"}
	for _, code := range []string{enr.Codes[0], enr.Codes[0], "00000-00000", enr.Codes[1]} {
		res, err := reg.Verify(ctx, factors.BackupCode, "alice", code, meta)
		var rl *factors.RateLimitedError
		switch {
		case err == nil:
			fmt.Println("200", res.Method, "level", res.Level)
		case errors.As(err, &rl):
			fmt.Println("429 Retry-After:", rl.RetryAfterSeconds())
		case errors.Is(err, factors.ErrReplay):
			fmt.Println("401 code already used")
		case errors.Is(err, factors.ErrInvalidCode):
			fmt.Println("401 wrong code")
		default:
			fmt.Println("503")
		}
	}
	// Output:
	// 200 backup_code level 2
	// 401 code already used
	// 401 wrong code
	// 429 Retry-After: 2800
}
