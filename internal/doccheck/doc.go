// Package doccheck holds the tests of the repository's documents: the
// picture of a connection's journey, the links between README.md and docs/,
// and the Makefile's package sets. It has no code of its own.
package doccheck
