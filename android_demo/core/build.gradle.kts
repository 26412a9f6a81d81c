// Pure Kotlin/JVM: no Android import, so CI compiles and tests it without the
// Android SDK (.ci/stages/android.sh, with kotlinc directly).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    testImplementation(libs.junit.jupiter)
}

tasks.test {
    useJUnitPlatform()
    // the golden files of android_demo/tools/make_goldens.py
    systemProperty("goldens", providers.gradleProperty("goldens").getOrElse("$rootDir/build/goldens"))
}
