package main

import (
	"github.com/synq-trace/synq/internal/command"
	"github.com/synq-trace/synq/internal/render"
)

// The output of each command moved to internal/render and its run loop to
// internal/command; the CLI's tests keep their names for them.
type (
	topRowJSON       = render.TopRowJSON
	topCoverageJSON  = render.TopCoverageJSON
	latencyGroupJSON = render.LatencyGroupJSON
	statsReport      = render.StatsReport
)

// statesReport decodes `synq states --output json`; its port rows are
// compared as struct literals, so they get a type of this package.
type statesReport struct {
	render.StatesReport
	Ports []statesPort `json:"ports"`
}

type statesPort render.StatesPort

var (
	topText          = render.TopText
	topRate          = render.TopRate
	topClip          = render.TopClip
	newTopFrameJSON  = render.NewTopFrameJSON
	writeLatencyText = render.WriteLatencyText
	newStatsReport   = render.NewStatsReport
	writeStats       = render.WriteStats
	unseenKinds      = command.UnseenKinds
)
