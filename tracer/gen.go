package tracer

// One object per attach tier; the loader shares their maps. The generated
// *_bpfel.go/.o files are committed so `go build` needs no clang.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type synq_event -type synq_counts -type synq_hist -type synq_max -type synq_kind -type synq_reason -type synq_counter tp ../bpf/tp.c -- -I../bpf/headers -I../bpf
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type synq_listener iter ../bpf/iter.c -- -I../bpf/headers -I../bpf
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 fentry ../bpf/fentry.c -- -I../bpf/headers -I../bpf
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 kprobe ../bpf/kprobe.c -- -I../bpf/headers -I../bpf
