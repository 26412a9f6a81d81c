// Pure Kotlin/JVM: no Android import, so CI compiles and tests it without the
// Android SDK (.ci/stages/android.sh, with kotlinc directly).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin {
    jvmToolchain(17)
}

// the artifact contract: the one schema file the Python exporter validates
// with, a classpath resource of :core (ArtifactSchema.bundled)
sourceSets.main {
    resources.srcDir("../../edge_backbones/core")
    resources.include("artifact.schema.json")
}

dependencies {
    testImplementation(libs.junit.jupiter)
}

tasks.test {
    useJUnitPlatform()
    // the golden files of android_demo/tools/make_goldens.py
    systemProperty("goldens", providers.gradleProperty("goldens").getOrElse("$rootDir/build/goldens"))
    // every target's sidecar, shared with the Python tests
    systemProperty("artifactGoldens", "$rootDir/../tests/goldens/artifacts")
}
