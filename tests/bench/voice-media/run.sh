#!/usr/bin/env bash
# Voice session media (common/src/audio.c) at 16 kHz, 20 ms frames: CPU time per frame of
#   in:  Opus decode of the caller's packet + VAD with the speexdsp denoiser
#   out: resampling of espeak-ng's 22050 Hz reply to 16 kHz + Opus encode (complexity 0..10)
# and the real-time sessions one core sustains: 20 ms / (decode + VAD + encode) per frame, with
# every part running on every frame (full duplex: the VAD listens for barge-in while the reply
# plays). The resampler is shown apart: an ElevenLabs reply (pcm_16000) needs none.
# Goal (issue 7): at least 300 sessions per core. No external anchor: the figures are libopus's
# and libspeexdsp's own costs through our wrappers, next to the goal.
# Two totals, both full duplex: the library defaults (VAD with denoise, encoder complexity
# TN_OPUS_DEFAULT_COMPLEXITY; voice_media.sessions_per_core, the figure since issue 7 began), and
# the gateway's defaults as `taina-voice-gateway --list-config` prints them (denoise off, quiet
# frames mostly skipped, the detector at 8 kHz, reply complexity 0;
# voice_media.sessions_per_core_gateway).
#   tests/bench/voice-media/run.sh     (from the repo top, after make)
# Knobs: BENCH_PASSES passes over the 30 s of speech (5).
set -euo pipefail
cd "$(dirname "$0")/../../.."
BUILD=${BUILD:-build}
out=$(mktemp /tmp/taina-bench-voice.XXXXXX)
trap 'rm -f "$out"' EXIT
# the gateway's defaults, from its own config table
gwdef() { "$BUILD"/bin/taina-voice-gateway --list-config | awk -F'`' -v k="TAINA_VOICE_$1" '$2 == k {print $4}'; }
gw_cx=$(gwdef OPUS_COMPLEXITY) gw_dn=$(gwdef VAD_DENOISE) gw_qs=$(gwdef VAD_QUIET_STRIDE)
gw_half=$(gwdef VAD_HALF_RATE)
b01() { [[ "$1" == true ]] && echo 1 || echo 0; }
"$BUILD"/bench/bench-voice-media "${BENCH_PASSES:-5}" "$(b01 "$gw_dn")" "$gw_qs" "$(b01 "$gw_half")" >"$out"
get() { awk -v k="$1" '$1 == k {print $2}' "$out"; }
dec=$(get decode_us) vad=$(get vad_us) def=$(get default_complexity)
printf 'voice media: %s s of espeak-ng speech (es+en), %s frames of 20 ms x %s passes; VAD said speech on %s of frames\n' \
    "$(get audio_s)" "$(get frames)" "$(get passes)" "$(get speech_share)"
printf '  in:  opus decode %6s us   vad+denoise %6s us   per frame\n' "$dec" "$vad"
printf '  out: resample 22050->16000 %s us (quality 5), %s us (quality 3) per frame\n' \
    "$(get resample_q5_us)" "$(get resample_q3_us)"
printf '  %-12s %10s %10s %8s %18s %22s\n' "complexity" "encode us" "total us" "kbit/s" \
    "corr (decoded)" "sessions/core"
for c in 0 1 2 3 4 5 6 7 8 9 10; do
    e=$(get "encode_c${c}_us")
    tot=$(echo "$dec + $vad + $e" | bc -l)
    ses=$(echo "20000 / $tot" | bc)
    mark=""
    [[ "$c" == "$def" ]] && mark="  <- default"
    printf '  %-12s %10s %10.1f %8s %18s %22s%s\n' "$c" "$e" "$tot" "$(get "encode_c${c}_kbps")" \
        "$(get "encode_c${c}_corr")" "$ses" "$mark"
done
e=$(get "encode_c${def}_us")
tot=$(echo "$dec + $vad + $e" | bc -l)
ses=$(echo "20000 / $tot" | bc)
tot_rs=$(echo "$tot + $(get resample_q5_us)" | bc -l)
ses_rs=$(echo "20000 / $tot_rs" | bc)
printf '  default (complexity %s): %.1f us per frame -> %s sessions per core (%s with espeak resampling)\n' \
    "$def" "$tot" "$ses" "$ses_rs"
gw_vad=$(get vad_gw_us) gw_enc=$(get "encode_c${gw_cx}_us")
gw_tot=$(echo "$dec + $gw_vad + $gw_enc" | bc -l)
gw_ses=$(echo "20000 / $gw_tot" | bc)
printf '  gateway defaults (%s, complexity %s): decode %s + vad %s + encode %s = %.1f us per frame -> %s sessions per core; its detector decided as the full-rate one on %s of frames\n' \
    "$(get vad_gw_opts)" "$gw_cx" "$dec" "$gw_vad" "$gw_enc" "$gw_tot" "$gw_ses" "$(get vad_gw_agree)"
printf 'RESULT voice_media.sessions_per_core value=%s goal=300 complexity=%s\n' "$ses" "$def"
printf 'RESULT voice_media.sessions_per_core_gateway value=%s goal=300 complexity=%s\n' "$gw_ses" "$gw_cx"
printf 'RESULT voice_media.sessions_per_core_espeak value=%s goal=300 complexity=%s\n' "$ses_rs" "$def"
printf 'RESULT voice_media.decode_vad_us value=%.2f goal=-\n' "$(echo "$dec + $vad" | bc -l)"
printf 'RESULT voice_media.encode_us value=%s goal=-\n' "$e"
