package netlab

import "testing"

// SysctlPath is sysctlPath for the tests of package netlab_test.
var SysctlPath = sysctlPath

func TestParseMIB(t *testing.T) {
	tests := []struct {
		name, in string
		want     Counters
		wantErr  bool
	}{
		{
			name: "netstat",
			in:   "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 1 22 23\nIpExt: InNoRoutes\nIpExt: 0\n",
			want: Counters{"TcpExt.SyncookiesSent": 1, "TcpExt.ListenOverflows": 22, "TcpExt.ListenDrops": 23, "IpExt.InNoRoutes": 0},
		},
		{
			name: "snmp negative MaxConn",
			in:   "Tcp: RtoMin MaxConn RetransSegs\nTcp: 200 -1 7\n",
			want: Counters{"Tcp.RtoMin": 200, "Tcp.MaxConn": ^uint64(0), "Tcp.RetransSegs": 7},
		},
		{name: "missing values", in: "TcpExt: A B\n", wantErr: true},
		{name: "length mismatch", in: "TcpExt: A B\nTcpExt: 1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Counters{}
			err := parseMIB([]byte(tt.in), got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %d, want %d", k, got[k], v)
				}
			}
		})
	}
}
