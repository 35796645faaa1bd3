package tracer

// EnqueuedChildren counts the children whose enqueue the kernel side holds
// for their accept (the child_enqueued map).
func EnqueuedChildren(t *Tracer) (int, error) {
	m := t.maps["child_enqueued"]
	var key uint64
	val := make([]byte, m.ValueSize())
	n := 0
	it := m.Iterate()
	for it.Next(&key, &val) {
		n++
	}
	return n, it.Err()
}
