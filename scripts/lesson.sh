#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The course through the patterns (Documentation/patterns/README.md): each
# lesson is a pattern in C (the example driver) or in Rust (the lab module),
# fixed by the student in a copy of its own and proven by one command.
#
#   scripts/lesson.sh list                 the lessons, in the course's order
#   scripts/lesson.sh start LESSON         copy the code to build/lessons/LESSON/
#                                          and say which function to fix
#   scripts/lesson.sh prove LESSON         build the copy against the project's
#                                          kernel and check it in QEMU with
#                                          `leaklab check`: exit 0 once the leak
#                                          is gone, 1 while it leaks (check's own
#                                          status; 2 and others: not checked)
#   scripts/lesson.sh solve LESSON         apply the reference fix,
#                                          Documentation/patterns/lessons/LESSON.patch,
#                                          to the copy
#
# LESSON is PATTERN-c or PATTERN-rust (error_path-c). `make lesson
# LESSON=...` and `make prove LESSON=...` run the first two (make turns a
# failure into its own status 2: use this script where the status matters).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'lesson: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

# The lessons in order: LESSON, then the function to fix (its file).
LESSONS="
error_path-c error_path_leaky()
error_path-rust probe_leaky()
conditional_free-c conditional_free_leaky()
conditional_free-rust handle_leaky()
module_exit-c module_exit_leaky()
module_exit-rust arm_leaky()
device_ref-c device_ref_leaky()
device_ref-rust probe_remove_leaky()
slab_cache-c slab_cache_leaky()
slab_cache-rust probe_remove_leaky()
rust_forget-rust run_leaky()
arc_cycle-rust teardown_leaky()
page_leak-rust setup_ring_leaky()
"
usage="usage: scripts/lesson.sh list | start|prove|solve LESSON (one of: $(echo "$LESSONS" | awk 'NF {printf "%s%s", s, $1; s=" "}'))"

[ $# -ge 1 ] || die "$usage"
action=$1 lesson=${2:-}
if [ "$action" = list ]; then
	echo "$LESSONS" | awk 'NF {printf "%-22s fix %s\n", $1, $2}'
	exit 0
fi
[ -n "$lesson" ] || die "$usage"
fn=$(echo "$LESSONS" | awk -v l="$lesson" '$1 == l {print $2}')
[ -n "$fn" ] || die "no lesson '$lesson': $usage"
pattern=${lesson%-*} lang=${lesson##*-}
copy=build/lessons/$lesson
fix=Documentation/patterns/lessons/$lesson.patch
case $lang in
c) file=leaky_driver.c ;;
rust) file=samples/$pattern.rs ;;
esac

case $action in
start)
	[ ! -e "$copy" ] || die "$copy exists: fix it there, or remove it to start again"
	mkdir -p "$copy"
	if [ "$lang" = c ]; then
		cp examples/leaky_driver/Kbuild examples/leaky_driver/Makefile examples/leaky_driver/leaky_driver.c "$copy/"
	else
		# The lab module's sources, as `make bundle` copies them.
		mkdir -p "$copy/module" "$copy/samples"
		for f in Kbuild module/*.rs module/*.c module/*.h samples/*.rs; do
			case $f in module/ffi_generated.rs) continue ;; esac
			cp "$f" "$copy/$f"
		done
	fi
	say "your copy: $copy"
	say "fix $fn in $copy/$file, then prove it: scripts/lesson.sh prove $lesson"
	;;
prove)
	[ -d "$copy" ] || die "no copy in $copy: run 'scripts/lesson.sh start $lesson' first"
	if [ "$lang" = c ]; then
		# The driver with the pattern asked for at load time: check judges
		# what is left once it is unloaded.
		exec bash scripts/try.sh --results "build/results/lesson-$lesson" "$copy" -- --param "bug=$pattern"
	fi
	# The lab module, the pattern's leaky variant run once while loaded.
	printf 'echo 1 > /sys/kernel/debug/leaklab/patterns/%s/leaky\n' "$pattern" > "$copy/exercise.sh"
	exec bash scripts/try.sh --results "build/results/lesson-$lesson" --exercise "$copy/exercise.sh" "$copy"
	;;
solve)
	[ -d "$copy" ] || die "no copy in $copy: run 'scripts/lesson.sh start $lesson' first"
	patch -d "$copy" -p1 --forward < "$fix" >&2 || die "$fix does not apply to $copy (edited already?)"
	say "the reference fix is in $copy/$file"
	;;
*) die "$usage" ;;
esac
