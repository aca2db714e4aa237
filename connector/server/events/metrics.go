package events

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connector-engine/connector/connector/server/state"
)

// Metrics counts deliveries. Register it once per registry with
// NewMetrics; a Worker without Metrics counts nothing.
type Metrics struct {
	delivered prometheus.Counter
	failed    prometheus.Counter
	dead      prometheus.Counter
}

// NewMetrics registers the delivery counters and the queue gauges (read
// from the database at scrape time, so every replica reports the shared
// queue) with reg.
func NewMetrics(reg prometheus.Registerer, db *state.DB) (*Metrics, error) {
	m := &Metrics{
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "connector_events_delivered_total", Help: "Events delivered to tenants' event URLs (answered 2xx)."}),
		failed:    prometheus.NewCounter(prometheus.CounterOpts{Name: "connector_events_failed_attempts_total", Help: "Delivery attempts that failed (each retried or dead-lettered)."}),
		dead:      prometheus.NewCounter(prometheus.CounterOpts{Name: "connector_events_dead_lettered_total", Help: "Events given up on: dead letters, replayable."}),
	}
	q := &queueCollector{db: db,
		depth:  prometheus.NewDesc("connector_events_queue_depth", "Events waiting for delivery (pending, including retries), every tenant.", nil, nil),
		deadD:  prometheus.NewDesc("connector_events_dead_letters", "Dead letters waiting for a replay, every tenant.", nil, nil),
		oldest: prometheus.NewDesc("connector_events_queue_oldest_age_seconds", "Age of the oldest pending event (since appended or replayed); 0 when none.", nil, nil),
	}
	for _, c := range []prometheus.Collector{m.delivered, m.failed, m.dead, q} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

type queueCollector struct {
	db                   *state.DB
	depth, deadD, oldest *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.deadD
	ch <- c.oldest
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q, err := c.db.EventQueue(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		return
	}
	age := 0.0
	if !q.Oldest.IsZero() {
		age = max(0, time.Since(q.Oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(q.Pending))
	ch <- prometheus.MustNewConstMetric(c.deadD, prometheus.GaugeValue, float64(q.Dead))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}

type outcome int

const (
	outcomeDelivered outcome = iota
	outcomeFailed
	outcomeDead // a failed attempt that gave up
)

func (m *Metrics) count(o outcome) {
	if m == nil {
		return
	}
	switch o {
	case outcomeDelivered:
		m.delivered.Inc()
	case outcomeFailed:
		m.failed.Inc()
	case outcomeDead:
		m.failed.Inc()
		m.dead.Inc()
	}
}
