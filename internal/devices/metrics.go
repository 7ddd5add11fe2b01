package devices

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are every Prometheus collector of the package; this file is the
// only place they are defined.
type metrics struct {
	ops *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stepup", Subsystem: "trusted_device", Name: "operations_total",
			Help: "Trusted-device operations (trust, check, revoke) by outcome (success, refused, error).",
		}, []string{"op", "outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	if err := reg.Register(m.ops); err != nil {
		return nil, fmt.Errorf("devices: registering metrics: %w", err)
	}
	return m, nil
}
