package notify

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are every Prometheus collector of the package; this file is the
// only place they are defined.
type metrics struct {
	recorded   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		recorded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stepup", Subsystem: "notification", Name: "events_total",
			Help: "Security events recorded once (duplicates are not counted), by event and whether they are to be sent.",
		}, []string{"event", "send"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stepup", Subsystem: "notification", Name: "deliveries_total",
			Help: "Delivery attempts by event and outcome (sent, retry, failed, no_recipient).",
		}, []string{"event", "outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.recorded, m.deliveries} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("notify: registering metrics: %w", err)
		}
	}
	return m, nil
}
