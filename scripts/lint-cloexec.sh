#!/bin/sh
# Every fd cellvisor creates must be close-on-exec (reliability.md, CVE-2024-21626). This
# lint finds calls that create an fd and whose statement does not mention a CLOEXEC flag.
# A deliberate exception carries the comment "cloexec-ok" on the call's line.
set -eu
cd "$(dirname "$0")/.."
status=0
for f in $(git ls-files 'src/*.c'); do
	awk -v file="$f" '
	function check(stmt, line) {
		if (stmt ~ /cloexec-ok/) return
		if (stmt !~ /CLOEXEC/) {
			printf "%s:%d: fd created without CLOEXEC: %s\n", file, line, substr(stmt, 1, 120)
			bad = 1
		}
	}
	{
		code = $0
		gsub(/\/\*.*\*\//, "", code)
		sub(/\/\/.*/, "", code)
		if (!collecting && code ~ /(^|[^_a-z0-9])(open|openat|socket|socketpair|pipe2|epoll_create1|signalfd|timerfd_create|memfd_create|accept4|fsopen|fsmount|open_tree|pidfd_open|inotify_init1)\(/ \
		    && code !~ /^[ \t]*(\*|\/\/|\/\*)/ && code !~ /^[a-z_]+\(/ && code !~ /(int|void|static) [a-z_]*\(/) {
			collecting = 1; stmt = ""; start = NR
		}
		if (collecting) {
			stmt = stmt " " $0
			if ($0 ~ /;[ \t]*(\/\*.*\*\/)?[ \t]*$/ || $0 ~ /\)[ \t]*\{?[ \t]*$/ && stmt ~ /if \(/) {
				check(stmt, start); collecting = 0
			}
		}
	}
	END { exit bad }' "$f" || status=1
done
exit $status
