package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSample is a process's CPU time at a moment.
type cpuSample struct {
	at  time.Time
	cpu time.Duration // user + system
	ok  bool
}

// procCPU sums utime+stime of pids; ok only if every one was read.
func procCPU(pids ...int) cpuSample {
	sum := cpuSample{ok: len(pids) > 0}
	for _, pid := range pids {
		s := procCPU1(pid)
		sum.at, sum.cpu, sum.ok = s.at, sum.cpu+s.cpu, sum.ok && s.ok
	}
	return sum
}

// pidList is "1,2" for --server-pid 1,2.
func pidList(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// procCPU1 reads utime+stime of pid from /proc/PID/stat.
func procCPU1(pid int) cpuSample {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuSample{}
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return cpuSample{}
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return cpuSample{}
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return cpuSample{}
	}
	return cpuSample{at: time.Now(), cpu: time.Duration(ut+st) * time.Second / clockTicks, ok: true}
}

// selfCPU is dtload's own CPU time (getrusage).
func selfCPU() cpuSample {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuSample{}
	}
	return cpuSample{
		at:  time.Now(),
		cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		ok:  true,
	}
}

// cpuPct is the CPU used between a and b as % of one core.
func cpuPct(a, b cpuSample) float64 {
	if !a.ok || !b.ok || !b.at.After(a.at) {
		return 0
	}
	return 100 * float64(b.cpu-a.cpu) / float64(b.at.Sub(a.at))
}

// procRSS is the sum of the VmRSS of pids in KiB (0 for one unknown).
func procRSS(pids ...int) int64 {
	var sum int64
	for _, pid := range pids {
		sum += procRSS1(pid)
	}
	return sum
}

// procRSS1 is VmRSS of pid in KiB, 0 if unknown.
func procRSS1(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// procWatch samples the server processes (their sums) and dtload itself
// at the run's start, the media window's start and end, and their RSS
// periodically.
type procWatch struct {
	pids                []int
	srv0, srv1, srv2    cpuSample
	self0, self1, self2 cpuSample
	rssEnd              int64
	rssMax              atomic.Int64 // sampled by the progress goroutine too
}

func newProcWatch(pids []int) *procWatch {
	w := &procWatch{pids: pids, self0: selfCPU()}
	if len(pids) > 0 {
		w.srv0 = procCPU(pids...)
	}
	return w
}

func (w *procWatch) sampleRSS() int64 {
	if len(w.pids) == 0 {
		return 0
	}
	r := procRSS(w.pids...)
	for {
		m := w.rssMax.Load()
		if r <= m || w.rssMax.CompareAndSwap(m, r) {
			return r
		}
	}
}

// windowStart and windowEnd mark the media window.
func (w *procWatch) windowStart() {
	w.self1 = selfCPU()
	if len(w.pids) > 0 {
		w.srv1 = procCPU(w.pids...)
	}
}

func (w *procWatch) windowEnd() {
	w.self2 = selfCPU()
	if len(w.pids) > 0 {
		w.srv2 = procCPU(w.pids...)
		w.rssEnd = w.sampleRSS()
	}
}

// fill puts the figures into r.
func (w *procWatch) fill(r *Report) {
	r.Load = ProcStats{CPUPct: cpuPct(w.self1, w.self2), CPUPctRun: cpuPct(w.self0, w.self2)}
	if len(w.pids) > 0 {
		r.ServerProc = &ProcStats{
			PID: w.pids[0], PIDs: w.pids, CPUPct: cpuPct(w.srv1, w.srv2), CPUPctRun: cpuPct(w.srv0, w.srv2),
			RSSKB: w.rssEnd, RSSMaxKB: w.rssMax.Load(),
		}
	}
}
