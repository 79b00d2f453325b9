#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# lava/leaklab-lava.sh: the run step of lava/leaklab.yaml, on the device.
# Runs `leaklab doctor`, `leaklab matrix` and, when MODULE is set, `leaklab
# check MODULE`; `leaklab lava cases` turns each result into lines of
# NAME RESULT [MEASUREMENT UNITS], each reported with LAVA's lava-test-case
# in a lava-test-set named after the command, and the command's exit status
# as the case COMMAND.exit_status. Parameters (environment): LEAKLAB, MODULE,
# CHECK_ARGS, OUT (see lava/leaklab.yaml).
LEAKLAB=${LEAKLAB:-leaklab}
OUT=${OUT:-/tmp/leaklab-lava}
mkdir -p "$OUT" || exit 1

# report SET FILE STATUS: the cases of FILE and STATUS in the test set SET.
report() {
	set=$1 file=$2 status=$3
	lava-test-set start "$set"
	if "$LEAKLAB" lava cases "$file" >"$OUT/$set.cases"; then
		while read -r name result measurement units; do
			if [ -n "$measurement" ]; then
				lava-test-case "$set.$name" --result "$result" \
					--measurement "$measurement" --units "$units"
			else
				lava-test-case "$set.$name" --result "$result"
			fi
		done <"$OUT/$set.cases"
	fi
	if [ "$status" = 0 ]; then result=pass; else result=fail; fi
	lava-test-case "$set.exit_status" --result "$result" --measurement "$status" --units status
	lava-test-set stop
}

"$LEAKLAB" doctor --format json >"$OUT/doctor.json"
report doctor "$OUT/doctor.json" $?

"$LEAKLAB" matrix --format json >"$OUT/matrix.json"
report matrix "$OUT/matrix.json" $?

if [ -n "$MODULE" ]; then
	# shellcheck disable=SC2086 # CHECK_ARGS is words.
	"$LEAKLAB" check "$MODULE" $CHECK_ARGS --format json >"$OUT/check.json"
	report check "$OUT/check.json" $?
fi
exit 0
