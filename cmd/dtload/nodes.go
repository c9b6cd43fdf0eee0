package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/dtcall/dtcall/client"
)

// node is one dtoperator to reach: its host and its three ports.
type node struct {
	host                 string
	command, media, quic int
}

// String is HOST:COMMAND:MEDIA:QUIC, the long form of --server.
func (n node) String() string {
	h := n.host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return fmt.Sprintf("%s:%d:%d:%d", h, n.command, n.media, n.quic)
}

// options are the client options of a party on n, without the pin.
func (n node) options() client.Options {
	return client.Options{Server: n.host, CommandPort: n.command, MediaPort: n.media, QUICPort: n.quic}
}

// parseNodes parses --server values: each a comma-separated list of HOST
// (the --command, --media and --quic ports) or HOST:COMMAND:MEDIA:QUIC,
// an IPv6 host in brackets. HOST:COMMAND:MEDIA takes QUIC = COMMAND.
func parseNodes(s string, command, media, quic int) ([]node, error) {
	var nodes []node
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		n, err := parseNode(item, command, media, quic)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return nil, errors.New("no --server: give the address explicitly (e.g. 127.0.0.1)")
	}
	return nodes, nil
}

func parseNode(item string, command, media, quic int) (node, error) {
	host, rest := item, ""
	if strings.HasPrefix(item, "[") {
		end := strings.Index(item, "]")
		if end < 0 {
			return node{}, fmt.Errorf("--server %q: no ] after the IPv6 address", item)
		}
		host, rest = item[1:end], item[end+1:]
		if rest != "" && !strings.HasPrefix(rest, ":") {
			return node{}, fmt.Errorf("--server %q: want [IPv6]:COMMAND:MEDIA:QUIC", item)
		}
		rest = strings.TrimPrefix(rest, ":")
	} else if strings.Count(item, ":") > 3 {
		return node{}, fmt.Errorf("--server %q: put an IPv6 address in brackets", item)
	} else {
		host, rest, _ = strings.Cut(item, ":")
	}
	if host == "" {
		return node{}, fmt.Errorf("--server %q: no host", item)
	}
	n := node{host: host, command: command, media: media, quic: quic}
	if rest == "" {
		return n, nil
	}
	parts := strings.Split(rest, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return node{}, fmt.Errorf("--server %q: want HOST or HOST:COMMAND:MEDIA:QUIC", item)
	}
	ports := make([]int, len(parts))
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 1 || v > 65535 {
			return node{}, fmt.Errorf("--server %q: %q is not a port", item, p)
		}
		ports[i] = v
	}
	n.command, n.media, n.quic = ports[0], ports[1], ports[0]
	if len(ports) == 3 {
		n.quic = ports[2]
	}
	if net.ParseIP(host) == nil && strings.ContainsAny(host, "/ ") {
		return node{}, fmt.Errorf("--server %q: %q is not a host", item, host)
	}
	return n, nil
}

// parsePIDs parses --server-pid: PID[,PID...]; "" is none.
func parsePIDs(s string) ([]int, error) {
	var pids []int
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		v, err := strconv.Atoi(item)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("--server-pid %q: %q is not a process id", s, item)
		}
		pids = append(pids, v)
	}
	return pids, nil
}

// nodeOf is the node of client k (call i's caller is 2i, its callee
// 2i+1): round-robin, so that with two nodes or more a call's parties are
// on different nodes.
func nodeOf(k, nodes int) int { return k % nodes }
