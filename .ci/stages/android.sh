#!/usr/bin/env bash
# CI stage "android": compiles android_demo's :core with Kotlin 2.4 and runs
# its JUnit tests against golden files the Python runtime writes, then checks
# in Python that `report merge` takes the device JSON the Kotlin code wrote.
# The :app module needs the Android SDK and Google's Maven (not reachable
# here): it is not built. Installs: npm kotlin-compiler (into a cache folder),
# Debian's junit5. Run as root from the repository root.
set -euo pipefail
started=$(date +%s)
say() { echo "android stage: $* ($(($(date +%s) - started)) s)"; }

KOTLIN_VERSION=2.4.20
CACHE=${ANDROID_STAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge_backbones_android}
WORK=${ANDROID_STAGE_WORK:-$(mktemp -d)}
mkdir -p "$WORK"
KOTLIN_HOME="$CACHE/node_modules/kotlin-compiler"
JAVA_LIBS=/usr/share/java

if [ ! -x "$KOTLIN_HOME/bin/kotlinc" ]; then
    say "installing kotlin-compiler@$KOTLIN_VERSION from npm into $CACHE"
    mkdir -p "$CACHE"
    npm install --silent --no-audit --no-fund --prefix "$CACHE" \
        "kotlin-compiler@$KOTLIN_VERSION"
fi
if [ ! -f "$JAVA_LIBS/junit-platform-console-standalone.jar" ]; then
    say "installing junit5 (Debian)"
    apt-get install -y -q junit5 >/dev/null || {
        apt-get update -q >/dev/null && apt-get install -y -q junit5 >/dev/null
    }
fi
if ! command -v java >/dev/null; then
    say "installing openjdk-17-jre-headless (Debian)"
    apt-get install -y -q openjdk-17-jre-headless >/dev/null
fi
KOTLINC="$KOTLIN_HOME/bin/kotlinc"
"$KOTLINC" -version 2>&1 | tail -1

GOLDENS="$WORK/goldens"
say "writing golden files (Python runtime: tiny MiT, SegFormer and SAM exports) to $GOLDENS, meanwhile compiling :core"
# the goldens and kotlinc are each mostly one thread: side by side
python android_demo/tools/make_goldens.py --out "$GOLDENS" 2> "$WORK/goldens.log" &
goldens_pid=$!
trap 'kill "$goldens_pid" 2>/dev/null || true' EXIT

CORE=android_demo/core/src
JUNIT_API="$JAVA_LIBS/junit-jupiter-api.jar:$JAVA_LIBS/opentest4j.jar:$JAVA_LIBS/apiguardian-api.jar:$JAVA_LIBS/junit-platform-commons.jar"
say "compiling :core main"
"$KOTLINC" -jvm-target 17 -nowarn -d "$WORK/core.jar" $(find "$CORE/main" -name '*.kt' | sort)
say "compiling :core tests"
"$KOTLINC" -jvm-target 17 -nowarn -Xfriend-paths="$WORK/core.jar" -cp "$WORK/core.jar:$JUNIT_API" -d "$WORK/core-tests.jar" \
    $(find "$CORE/test" -name '*.kt' | sort)

wait "$goldens_pid" || { cat "$WORK/goldens.log"; exit 1; }
tail -1 "$WORK/goldens.log"

say "running :core tests"
# edge_backbones/core on the class path: the artifact schema is a resource of
# :core (as core/build.gradle.kts bundles it); the artifact goldens are the
# Python tests' own
java -Dgoldens="$GOLDENS" -DartifactGoldens="$PWD/tests/goldens/artifacts" \
    -jar "$JAVA_LIBS/junit-platform-console-standalone.jar" \
    --class-path "$WORK/core.jar:$WORK/core-tests.jar:$KOTLIN_HOME/lib/kotlin-stdlib.jar:$PWD/edge_backbones/core" \
    --scan-class-path "$WORK/core-tests.jar" --disable-banner --details=summary \
    --fail-if-no-tests

say "Python side: contract and merge of the Kotlin-written device JSON"
EDGE_BACKBONES_ANDROID_GOLDENS="$GOLDENS" python -m pytest -q \
    tests/android -m android
say "done"
