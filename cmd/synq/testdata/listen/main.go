// Command listen is the process of the test containers: with an address it
// listens there (backlog 64) and never accepts; without, it only waits (a
// pod sandbox's pause). Built static by the test, it is the whole image.
package main

import (
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 {
		l, err := net.Listen("tcp4", os.Args[1])
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		defer l.Close()
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
