#!/usr/bin/env bash
# `make fuzz`: coverage-guided fuzzing (libFuzzer, through `swiftc -sanitize=fuzzer`) of the code that
# reads hostile input: Africa's Talking's forms, Daraja's callbacks, the SMS command parser, the
# menus.json loader, the other aggregators' USSD dialects and backends' answers to http actions. Each target is built from the module sources it exercises (all Foundation-only,
# with AddressSanitizer) and run for FUZZ_SECONDS (default 60) from the committed seed corpus in
# Fuzz/Corpus/<target>, with a dictionary of the format's tokens (Fuzz/Dictionaries). A crash stops the run: its input is kept in Fuzz/crashes/ and the script
# exits 1. Usage: bash scripts/fuzz.sh [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(africastalking-forms daraja-callbacks sms-commands menus-loader ussd-dialects backend-answers momo-callbacks)
command -v swiftc >/dev/null || { echo "fuzz: Swift is not on PATH" >&2; exit 1; }

build=.build-fuzz
work=$(mktemp -d /tmp/ussd-gateway-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$build" Fuzz/crashes
flags=(-sanitize=fuzzer,address -parse-as-library -O -g -wmo)
# gold warns once per AddressSanitizer helper symbol; nothing else is dropped.
quiet() { grep -v "Cannot export local symbol '__asan" >&2 || true; }

# One object per module under test, instrumented for coverage. Only the files a target needs:
# each is Foundation-only, so no C library or network client is linked in.
module() {
    local name=$1; shift
    echo "fuzz: compiling $name" >&2
    swiftc "${flags[@]}" -I "$build" -module-name "$name" -emit-module -emit-module-path "$build/$name.swiftmodule" -c "$@" -o "$build/$name.o" 2>&1 | quiet
}
module Basics Sources/Basics/*.swift
module Menus Sources/Menus/*.swift
module AfricasTalking Sources/AfricasTalking/{AfricasTalkingUSSDHop,AfricasTalkingUSSDEvent,AfricasTalkingInboundSMS,AfricasTalkingDeliveryReport}.swift
module MPesa Sources/MPesa/{DarajaCallbackMalformed,DarajaField,STKCallback,B2CResult,C2BPayment,AccountBalance}.swift
module USSDDialects Sources/USSDDialects/*.swift
module MoMo Sources/MoMo/{MoMoTransaction,MoMoCallbackMalformed,MoMoAmount}.swift

declare -A sources=(
    [africastalking-forms]="Fuzz/Targets/AfricasTalkingForms.swift"
    [daraja-callbacks]="Fuzz/Targets/DarajaCallbacks.swift"
    [sms-commands]="Fuzz/Targets/SMSCommands.swift"
    [menus-loader]="Fuzz/Targets/MenusLoader.swift"
    [ussd-dialects]="Fuzz/Targets/USSDDialects.swift"
    [backend-answers]="Fuzz/Targets/BackendAnswers.swift"
    [momo-callbacks]="Fuzz/Targets/MoMoCallbacks.swift"
)
declare -A dictionaries=(
    [africastalking-forms]="Fuzz/Dictionaries/form.dict"
    [daraja-callbacks]="Fuzz/Dictionaries/json.dict"
    [sms-commands]="Fuzz/Dictionaries/sms.dict"
    [menus-loader]="Fuzz/Dictionaries/json.dict"
    [ussd-dialects]="Fuzz/Dictionaries/json.dict"
    [backend-answers]="Fuzz/Dictionaries/json.dict"
    [momo-callbacks]="Fuzz/Dictionaries/json.dict"
)
declare -A objects=(
    [africastalking-forms]="$build/AfricasTalking.o $build/Menus.o $build/Basics.o"
    [daraja-callbacks]="$build/MPesa.o $build/Basics.o"
    [sms-commands]="$build/Menus.o $build/Basics.o"
    [menus-loader]="$build/Menus.o $build/Basics.o"
    [ussd-dialects]="$build/USSDDialects.o $build/AfricasTalking.o $build/Basics.o"
    [backend-answers]="$build/Menus.o $build/Basics.o"
    [momo-callbacks]="$build/MoMo.o $build/Basics.o"
)

export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export FUZZ_MENUS=$PWD/menus.json
summary=()
status=0
for target in "${targets[@]}"; do
    [ -n "${sources[$target]:-}" ] || { echo "fuzz: no target $target (known: ${!sources[*]})" >&2; exit 2; }
    echo "fuzz: building $target" >&2
    # shellcheck disable=SC2086
    swiftc "${flags[@]}" -I "$build" ${sources[$target]} ${objects[$target]} -o "$build/fuzz-$target" 2>&1 | quiet
    corpus=$work/$target
    mkdir -p "$corpus"
    cp Fuzz/Corpus/"$target"/* "$corpus"/
    [ "$target" = menus-loader ] && cp menus.json "$corpus/shipped-menus.json"
    echo "fuzz: running $target for ${seconds}s" >&2
    log=$work/$target.log
    set +e
    "$build/fuzz-$target" "$corpus" -dict="${dictionaries[$target]}" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="$work/$target-" -print_final_stats=1 >"$log" 2>&1
    code=$?
    set -e
    runs=$(grep -oE '^Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo 0)
    [ "$runs" != 0 ] || runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
    corpus_size=$(ls "$corpus" | wc -l)
    if [ $code -ne 0 ]; then
        status=1
        for artifact in "$work/$target"-*; do
            [ -e "$artifact" ] && cp "$artifact" Fuzz/crashes/ && echo "fuzz: $target crashed; input kept in Fuzz/crashes/$(basename "$artifact")" >&2
        done
        grep -E 'ERROR|Fatal error|precondition|SUMMARY' "$log" | head -20 >&2 || true
        summary+=("$target: CRASH after $runs executions ($cov)")
    else
        summary+=("$target: $runs executions in ${seconds}s, $cov, corpus $corpus_size inputs, no crash")
    fi
done
printf '%s\n' "${summary[@]}"
exit $status
