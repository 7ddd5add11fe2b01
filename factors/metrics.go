package factors

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcome label values of the metrics, also used as the audit "reason".
const (
	OutcomeSuccess      = "success"
	OutcomeInvalidCode  = "invalid_code"
	OutcomeReplay       = "replay"
	OutcomeLocked       = "locked"
	OutcomeRateLimited  = "rate_limited"
	OutcomeNotEnrolled  = "not_enrolled"
	OutcomeExpired      = "expired"
	OutcomeInvalidInput = "invalid_input"
	OutcomeAlready      = "already_enrolled"
	OutcomeNotSupported = "not_supported"
	OutcomeError        = "error"
)

// metrics are every Prometheus collector of the package; this file is the
// only place they are defined.
type metrics struct {
	verifications *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	enrolments    *prometheus.CounterVec
	challenges    *prometheus.CounterVec
	resets        *prometheus.CounterVec
	lockouts      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stepup", Subsystem: "factor", Name: "verifications_total",
			Help: "Checks of a factor secret (verify, enrolment confirmation, change) by factor and outcome.",
		}, []string{"factor", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "stepup", Subsystem: "factor", Name: "verification_duration_seconds",
			Help:    "Time spent checking a factor secret, including the store, by factor.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"factor"}),
		enrolments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stepup", Subsystem: "factor", Name: "enrolments_total",
			Help: "Enrolments begun (success, replaced) or refused, by factor and outcome.",
		}, []string{"factor", "outcome"}),
		challenges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stepup", Subsystem: "factor", Name: "challenges_total",
			Help: "Challenges delivered or refused, by factor and outcome.",
		}, []string{"factor", "outcome"}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stepup", Subsystem: "factor", Name: "resets_total",
			Help: "Credentials removed, by factor and outcome.",
		}, []string{"factor", "outcome"}),
		lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stepup", Subsystem: "factor", Name: "lockouts_total",
			Help: `Lockouts started, by factor ("all" for the per-account failure budget).`,
		}, []string{"factor"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.verifications, m.duration, m.enrolments, m.challenges, m.resets, m.lockouts} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("factors: metrics already registered (one Registry per Registerer): %w", err)
			}
			return nil, fmt.Errorf("factors: registering metrics: %w", err)
		}
	}
	return m, nil
}

// outcomeOf maps an error of a factor to its outcome label.
func outcomeOf(err error) string {
	switch {
	case err == nil:
		return OutcomeSuccess
	case errors.Is(err, ErrRateLimited):
		return OutcomeRateLimited
	case errors.Is(err, ErrLocked):
		return OutcomeLocked
	case errors.Is(err, ErrReplay):
		return OutcomeReplay
	case errors.Is(err, ErrInvalidCode):
		return OutcomeInvalidCode
	case errors.Is(err, ErrNotEnrolled):
		return OutcomeNotEnrolled
	case errors.Is(err, ErrExpired):
		return OutcomeExpired
	case errors.Is(err, ErrInvalidInput):
		return OutcomeInvalidInput
	case errors.Is(err, ErrAlreadyEnrolled):
		return OutcomeAlready
	case errors.Is(err, ErrNotSupported):
		return OutcomeNotSupported
	default:
		return OutcomeError
	}
}
