package main

import "github.com/synq-trace/synq/internal/render"

// statesReport decodes `synq states --output json`; its port rows are
// compared as struct literals, so they get a type of this package.
type statesReport struct {
	render.StatesReport
	Ports []statesPort `json:"ports"`
}

type statesPort render.StatesPort
