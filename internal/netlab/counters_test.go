package netlab

// SysctlPath is sysctlPath for the tests of package netlab_test.
var SysctlPath = sysctlPath
