package exporter

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Describe sends every metric synq can export.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect refreshes from the source and sends the metrics.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descBuildInfo, prometheus.GaugeValue, 1, e.opts.Version, string(e.info.Tier), e.info.Kernel)
	err := e.refresh(e.opts.Now())
	e.health.collect(ch)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descDrops, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, float64(e.lost))
	for _, se := range e.series {
		if !se.slotted {
			continue
		}
		var g *gauges
		if se.live {
			g = &gauges{se.accLen, se.accMax, se.synLen}
		}
		e.collectListener(ch, se.labelValues(), &se.own, &se.ownHist, g)
		var name string
		if st := e.kernel[se.netns]; st != nil {
			name = st.name
		}
		e.collectInfo(ch, se, name)
	}
	if e.otherUsed {
		var g *gauges
		if e.otherLive {
			g = &e.otherGauges
		}
		e.collectListener(ch, otherLabels, &e.other, &e.otherHist, g)
	}
	e.collectKernel(ch)
}

func (e *Exporter) collectListener(ch chan<- prometheus.Metric, lv []string, v *values, h *hist, g *gauges) {
	for _, r := range e.reasons {
		ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(v[reasonValue[r]]), append(lv, r)...)
	}
	for d, i := range e.families {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v[i]), lv...)
	}
	if e.latency {
		cum := make(map[float64]uint64, len(e.opts.LatencyBuckets))
		var n uint64
		for i, ub := range e.opts.LatencyBuckets {
			n += h.buckets[i]
			cum[ub] = n
		}
		ch <- prometheus.MustNewConstHistogram(descLatency, h.count, h.sum, cum, lv...)
	}
	if g != nil {
		ch <- prometheus.MustNewConstMetric(descAcceptQueueLen, prometheus.GaugeValue, float64(g.accLen), lv...)
		ch <- prometheus.MustNewConstMetric(descAcceptQueueMax, prometheus.GaugeValue, float64(g.accMax), lv...)
		ch <- prometheus.MustNewConstMetric(descSynQueueLen, prometheus.GaugeValue, float64(g.synLen), lv...)
	}
}
