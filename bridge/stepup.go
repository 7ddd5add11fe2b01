package bridge

import (
	"context"
	"fmt"
	"net/http"

	"github.com/stepup-bridge/stepup-bridge/internal/store"
	"github.com/stepup-bridge/stepup-bridge/internal/token"
)

// isReadOnlyUserField reports the fields left out of the user PUT:
// enabled (a PUT with enabled true clears a brute-force lockout),
// requiredActions (a non-null list replaces the current one; left out,
// Keycloak keeps it, so a concurrent admin change is not undone),
// credentials (would reset the password) and fields Keycloak computes.
func isReadOnlyUserField(k string) bool {
	switch k {
	case "enabled", "requiredActions", "credentials", "access", "userProfileMetadata",
		"totp", "disableableCredentialTypes", "federatedIdentities", "socialLinks",
		"clientConsents", "realmRoles", "clientRoles", "groups", "notBefore", "createdTimestamp", "self", "origin":
		return true
	}
	return false
}

// LeaseName is the store lease serialising writes to one Keycloak user.
func LeaseName(userID string) string { return "kcuser:" + userID }

// StepUpEntries reads the user's valid step-up entries as stored in
// Keycloak (values that do not parse are left out).
func (b *Bridge) StepUpEntries(ctx context.Context, userID string) (entries []token.StepUpEntry, err error) {
	defer b.track("read_stepup")(&err)
	err = b.admin(ctx, func(tok string) error {
		raw, err := b.kc.userRaw(ctx, tok, userID)
		if err != nil {
			return err
		}
		entries, _ = token.ParseStepUpValues(attributeValues(raw, b.cfg.Attribute))
		return nil
	})
	return entries, err
}

// WriteStepUp adds entry e to the user's step-up attribute: under the
// store lease of the user, it reads the user, keeps the valid entries
// (values that are not valid JSON are removed: Keycloak fails every token
// request of a user holding one), adds e, prunes expired entries, keeps the
// newest MaxEntries, writes the user back with every other attribute and
// root field and without enabled, and reads it back.
//
// ErrAttributeDropped means Keycloak silently discarded the attribute (it
// is not declared in the user profile); the error text says that
// `stepup-bridge apply` fixes it. e must pass Validate and must not be
// expired.
func (b *Bridge) WriteStepUp(ctx context.Context, userID string, e token.StepUpEntry) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("bridge: writing step-up for user %s: %w", userID, err)
	}
	if e.Expired(b.cfg.Now()) {
		return fmt.Errorf("bridge: writing step-up for user %s: %w: entry already expired", userID, token.ErrInvalidEntry)
	}
	return b.UpdateStepUp(ctx, userID, func(cur []token.StepUpEntry) []token.StepUpEntry {
		// A retried write-back (the first answer was lost) must not add
		// the same entry twice.
		for _, c := range cur {
			if c.Marshal() == e.Marshal() {
				return cur
			}
		}
		return append(cur, e)
	}, e)
}

// RemoveStepUp deletes the user's entries for session sid (the session
// logged out, or an admin reset the user's step-up).
func (b *Bridge) RemoveStepUp(ctx context.Context, userID, sid string) error {
	return b.UpdateStepUp(ctx, userID, func(cur []token.StepUpEntry) []token.StepUpEntry {
		out := cur[:0]
		for _, x := range cur {
			if x.SID != sid {
				out = append(out, x)
			}
		}
		return out
	})
}

// UpdateStepUp runs fn on the user's valid, unexpired entries and stores
// what it returns (pruned and bounded), under the user's store lease. fn
// may run once per call and must not block. The entries in mustStick are
// checked in Keycloak's answer after the write: missing ones give
// ErrAttributeDropped when the whole attribute is gone, ErrConflict
// otherwise. Entries fn returns that fail Validate are an error, and
// nothing is written.
func (b *Bridge) UpdateStepUp(ctx context.Context, userID string, fn func([]token.StepUpEntry) []token.StepUpEntry, mustStick ...token.StepUpEntry) (err error) {
	defer b.track("write_stepup")(&err)
	if b.cfg.Leases == nil {
		return ErrNoLeases
	}
	if userID == "" {
		return &Error{Op: "write step-up", Message: "empty user id", Kind: ErrNotFound}
	}
	opts := store.LeaseOptions{TTL: b.cfg.LockTTL, Now: b.cfg.Now}
	err = store.WithLease(ctx, b.cfg.Leases, LeaseName(userID), opts, func(ctx context.Context) error {
		// Stop before the lease can run out under us, leaving a margin.
		ctx, cancel := context.WithTimeout(ctx, b.cfg.LockTTL-b.cfg.LockTTL/5)
		defer cancel()
		return b.admin(ctx, func(tok string) error { return b.writeStepUp(ctx, tok, userID, fn, mustStick) })
	})
	if err != nil {
		return fmt.Errorf("bridge: writing step-up for user %s: %w", userID, err)
	}
	return nil
}

func (b *Bridge) writeStepUp(ctx context.Context, tok, userID string, fn func([]token.StepUpEntry) []token.StepUpEntry, mustStick []token.StepUpEntry) error {
	now := b.cfg.Now()
	raw, err := b.kc.userRaw(ctx, tok, userID)
	if err != nil {
		return err
	}
	cur, dropped := token.ParseStepUpValues(attributeValues(raw, b.cfg.Attribute))
	if dropped > 0 {
		b.metrics.dropped.Add(float64(dropped))
	}
	next := token.PruneEntries(fn(token.PruneEntries(cur, now, 0)), now, b.cfg.MaxEntries)
	values := make([]string, 0, len(next))
	for _, e := range next {
		if err := e.Validate(); err != nil {
			return err
		}
		values = append(values, e.Marshal())
	}

	put := make(map[string]any, len(raw))
	for k, v := range raw {
		if !isReadOnlyUserField(k) {
			put[k] = v
		}
	}
	attrs := map[string]any{}
	if a, ok := raw["attributes"].(map[string]any); ok {
		for k, v := range a {
			attrs[k] = v
		}
	}
	if len(values) == 0 {
		delete(attrs, b.cfg.Attribute)
	} else {
		attrs[b.cfg.Attribute] = values
	}
	put["attributes"] = attrs
	if err := b.kc.putUserRaw(ctx, tok, userID, put); err != nil {
		return err
	}
	if len(mustStick) == 0 {
		return nil
	}

	back, err := b.kc.userRaw(ctx, tok, userID)
	if err != nil {
		return fmt.Errorf("reading the user back: %w", err)
	}
	stored := attributeValues(back, b.cfg.Attribute)
	have := make(map[string]bool, len(stored))
	for _, s := range stored {
		if e, err := token.ParseStepUpEntry(s); err == nil {
			have[e.Marshal()] = true
		}
	}
	for _, e := range mustStick {
		if have[e.Marshal()] {
			continue
		}
		if len(stored) == 0 {
			return &Error{Op: "write step-up", Status: http.StatusNoContent,
				Message: fmt.Sprintf("attribute %q absent after the update", b.cfg.Attribute), Kind: ErrAttributeDropped}
		}
		if e.Expired(now) || !contains(next, e) {
			continue // pruned by the bound, not lost
		}
		return &Error{Op: "write step-up", Status: http.StatusNoContent, Message: "entry missing after the update", Kind: ErrConflict}
	}
	return nil
}

func contains(entries []token.StepUpEntry, e token.StepUpEntry) bool {
	m := e.Marshal()
	for _, x := range entries {
		if x.Marshal() == m {
			return true
		}
	}
	return false
}

// attributeValues returns the string values of one attribute of a raw
// user representation; non-string values are skipped.
func attributeValues(raw map[string]any, name string) []string {
	attrs, _ := raw["attributes"].(map[string]any)
	vals, _ := attrs[name].([]any)
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
