package main

import (
	"reflect"
	"testing"
)

func TestParseNodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []node // nil: an error
	}{
		{"127.0.0.1", []node{{"127.0.0.1", 1991, 2014, 1991}}},
		{"a,b", []node{{"a", 1991, 2014, 1991}, {"b", 1991, 2014, 1991}}},
		{"a:1:2:3, b:4:5:6", []node{{"a", 1, 2, 3}, {"b", 4, 5, 6}}},
		{"a:1:2", []node{{"a", 1, 2, 1}}},
		{"[::1]:7:8:9,[::1]", []node{{"::1", 7, 8, 9}, {"::1", 1991, 2014, 1991}}},
		{"", nil}, {",", nil}, {"a:1", nil}, {"a:1:2:3:4", nil}, {"a:x:2:3", nil},
		{"a:0:2:3", nil}, {"::1", nil}, {"[::1", nil}, {":1:2:3", nil},
	}
	for _, tt := range tests {
		got, err := parseNodes(tt.in, 1991, 2014, 1991)
		if tt.want == nil {
			if err == nil {
				t.Errorf("parseNodes(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseNodes(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	// A repeated --server joins its values.
	f := runFlags{servers: []string{"a:1:2:3", "b,c"}}
	f.cfg.commandPort, f.cfg.mediaPort = 1991, 2014
	if err := f.target(); err != nil || len(f.cfg.nodes) != 3 || f.cfg.nodes[2].host != "c" {
		t.Errorf("repeated --server: %v, %v", f.cfg.nodes, err)
	}
}

func TestParsePIDs(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]int{"": nil, "12": {12}, "12, 34": {12, 34}} {
		if got, err := parsePIDs(in); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parsePIDs(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"x", "0", "1,-2"} {
		if _, err := parsePIDs(in); err == nil {
			t.Errorf("parsePIDs(%q): no error", in)
		}
	}
}

// TestSpreading: clients go round-robin over the nodes; with two nodes or
// more every call's caller and callee are on different nodes, and every
// node gets its share.
func TestSpreading(t *testing.T) {
	t.Parallel()
	for nodes := 1; nodes <= 5; nodes++ {
		per := make([]int, nodes)
		for call := range 100 {
			a, b := nodeOf(2*call, nodes), nodeOf(2*call+1, nodes)
			per[a]++
			per[b]++
			if nodes > 1 && a == b {
				t.Errorf("%d nodes: call %d has both parties on node %d", nodes, call, a)
			}
		}
		for i, n := range per {
			if n < 200/nodes || n > 200/nodes+1 {
				t.Errorf("%d nodes: node %d has %d of 200 clients", nodes, i, n)
			}
		}
	}
}
