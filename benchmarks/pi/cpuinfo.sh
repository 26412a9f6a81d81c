#!/usr/bin/env bash
# /proc/cpuinfo of a Raspberry Pi 4 (Cortex-A72) or 5 (Cortex-A76), with
# COUNT processors (the host's, so sysfs and cpuinfo agree). The fields are
# those the kernel prints on each board; cpuinfo/XNNPACK read the part
# numbers (0xd08, 0xd0b) to pick kernels.
set -euo pipefail
board="$1" count="$2"
case "$board" in
  pi4) features="fp asimd evtstrm crc32 cpuid"; variant=0x0; part=0xd08
       revision=3; code=c03114; model="Raspberry Pi 4 Model B Rev 1.4" ;;
  pi5) features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp"
       features="$features asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
       variant=0x4; part=0xd0b; revision=1; code=d04170
       model="Raspberry Pi 5 Model B Rev 1.0" ;;
  *) echo "board must be pi4 or pi5; got $board" >&2; exit 2 ;;
esac
for ((i = 0; i < count; i++)); do
  printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\n' "$i" "$features"
  printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\n' "$variant"
  printf 'CPU part\t: %s\nCPU revision\t: %s\n\n' "$part" "$revision"
done
printf 'Revision\t: %s\nSerial\t\t: 100000000000000e\nModel\t\t: %s\n' "$code" "$model"
