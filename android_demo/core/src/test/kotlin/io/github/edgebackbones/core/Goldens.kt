package io.github.edgebackbones.core

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * The files android_demo/tools/make_goldens.py writes, found through the
 * `goldens` system property (the CI stage passes -Dgoldens=DIR).
 */
object Goldens {
    val dir: File by lazy {
        val path = System.getProperty("goldens") ?: error(
            "Set -Dgoldens=DIR to the folder android_demo/tools/make_goldens.py wrote.",
        )
        File(path).also { check(File(it, "index.json").isFile) { "No index.json in $it; run make_goldens.py." } }
    }

    @Suppress("UNCHECKED_CAST")
    private val index: Map<String, Map<String, Any?>> by lazy {
        Json.parse(File(dir, "index.json").readText()) as Map<String, Map<String, Any?>>
    }

    @Suppress("UNCHECKED_CAST")
    val stats: Map<String, Any?> by lazy { Json.parse(File(dir, "stats.json").readText()) as Map<String, Any?> }

    fun has(name: String) = name in index

    fun dtype(name: String) = entry(name)["dtype"] as String

    fun shape(name: String): List<Int> = (entry(name)["shape"] as List<*>).map { (it as Long).toInt() }

    fun bytes(name: String): ByteArray = File(dir, "$name.bin").readBytes()

    fun floats(name: String): FloatArray {
        check(dtype(name) == "float32") { "$name is ${dtype(name)}" }
        val buffer = ByteBuffer.wrap(bytes(name)).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
        return FloatArray(buffer.remaining()).also { buffer.get(it) }
    }

    fun doubles(name: String): DoubleArray {
        check(dtype(name) == "float64") { "$name is ${dtype(name)}" }
        val buffer = ByteBuffer.wrap(bytes(name)).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer()
        return DoubleArray(buffer.remaining()).also { buffer.get(it) }
    }

    fun ints(name: String): IntArray {
        check(dtype(name) == "int32") { "$name is ${dtype(name)}" }
        val buffer = ByteBuffer.wrap(bytes(name)).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer()
        return IntArray(buffer.remaining()).also { buffer.get(it) }
    }

    fun text(file: String) = File(dir, file).readText()

    /** A raw output tensor as LiteRT's readFloat / readInt8 would hand it over. */
    fun raw(name: String): RawTensor =
        if (dtype(name) == "float32") RawTensor.Floats(floats(name)) else RawTensor.Bytes(bytes(name))

    fun image(): RgbImage {
        val (h, w) = shape("image_rgb")
        return RgbImage(h, w, bytes("image_rgb"))
    }

    fun metadata(kind: String) = ModelMetadata.parse(File(dir, "$kind.json").readText())

    @Suppress("UNCHECKED_CAST")
    fun models(): Map<String, Map<String, Any?>> = stats["models"] as Map<String, Map<String, Any?>>

    private fun entry(name: String) = index[name] ?: error("No golden array $name; run make_goldens.py.")
}

fun crop(image: RgbImage, height: Int, width: Int) = RgbImage(
    height,
    width,
    ByteArray(height * width * 3) { i ->
        val y = i / (width * 3)
        val rest = i % (width * 3)
        image.pixels[y * image.width * 3 + rest]
    },
)
