package keycloaktest

import (
	"crypto/subtle"
	"time"
)

// Brute-force detection after services/src/main/java/org/keycloak/services/managers/DefaultBruteForceProtector.java
// and services/src/main/java/org/keycloak/services/resources/admin/AttackDetectionResource.java.
// Failures are counted per user; the wait grows with failures/failureFactor
// (MULTIPLE) or linearly past failureFactor (LINEAR, Keycloak 26), capped at
// maxFailureWaitSeconds; quick successive failures wait at least
// minimumQuickLoginWaitSeconds; failures older than maxDeltaTimeSeconds
// reset the count. With permanentLockout the user is disabled instead
// (after maxTemporaryLockouts temporary lockouts when that is set).

const permanentLockoutReason = "permanentLockout"

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (s *Server) bruteForceLocked(r *realm, u *user, now time.Time) bool {
	if !r.bruteForce.Protected {
		return false
	}
	if !u.enabled && u.disabledReason == permanentLockoutReason {
		return true
	}
	f := r.failures[u.id]
	return f != nil && now.UnixMilli() < f.failedNotBeforeMs
}

func (s *Server) recordFailure(r *realm, u *user, now time.Time, ip string) {
	b := r.bruteForce
	if !b.Protected {
		return
	}
	f := r.failures[u.id]
	if f == nil {
		f = &loginFailure{}
		r.failures[u.id] = f
	}
	cur := now.UnixMilli()
	var delta int64
	if f.lastFailure > 0 {
		delta = cur - f.lastFailure
	}
	f.lastFailure = cur
	f.lastIP = ip
	if delta > 0 && delta > int64(b.MaxDeltaTimeSeconds)*1000 {
		f.numFailures = 0
	}
	f.numFailures++
	var wait int
	switch b.Strategy {
	case "LINEAR":
		if f.numFailures >= b.FailureFactor {
			wait = b.WaitIncrementSeconds * (1 + f.numFailures - b.FailureFactor)
		}
	default:
		wait = b.WaitIncrementSeconds * (f.numFailures / b.FailureFactor)
	}
	if wait == 0 && f.lastFailure > 0 && delta > 0 && delta < b.QuickLoginCheckMilliSeconds {
		wait = b.MinimumQuickLoginWaitSeconds
	}
	if wait <= 0 {
		return
	}
	if b.PermanentLockout && f.numFailures >= b.FailureFactor {
		f.numTempLockouts++
		if b.MaxTemporaryLockouts == 0 || f.numTempLockouts > b.MaxTemporaryLockouts {
			u.enabled = false
			u.disabledReason = permanentLockoutReason
			return
		}
	}
	wait = min(wait, b.MaxFailureWaitSeconds)
	f.failedNotBeforeMs = cur + int64(wait)*1000
}

// recordSuccess clears the failure count of a user who logged in while not locked.
func (s *Server) recordSuccess(r *realm, u *user) {
	delete(r.failures, u.id)
}

// clearLockout is what "enabled": true in PUT user and DELETE
// attack-detection do (UserResource.updateUserFromRep, AttackDetectionResource.clearBruteForceForUser).
func (s *Server) clearLockout(r *realm, u *user) {
	delete(r.failures, u.id)
	if u.disabledReason == permanentLockoutReason {
		u.disabledReason = ""
		u.enabled = true
	}
}

func (s *Server) bruteForceStatus(r *realm, u *user) map[string]any {
	out := map[string]any{"numFailures": 0, "disabled": false, "lastIPFailure": "n/a", "lastFailure": 0}
	if !r.bruteForce.Protected {
		return out
	}
	out["disabled"] = s.bruteForceLocked(r, u, s.now())
	if f := r.failures[u.id]; f != nil {
		out["numFailures"] = f.numFailures
		out["lastIPFailure"] = f.lastIP
		out["lastFailure"] = f.lastFailure
	}
	return out
}
