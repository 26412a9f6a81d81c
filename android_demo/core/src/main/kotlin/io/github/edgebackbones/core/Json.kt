package io.github.edgebackbones.core

/**
 * A small strict JSON reader and writer: the Kotlin standard library has none,
 * and :core takes no dependency. Objects read as [LinkedHashMap] (key order
 * kept), arrays as [List], integers without fraction or exponent as [Long],
 * other numbers as [Double]. NaN and Infinity are refused both ways, as the
 * Python side (`allow_nan=False`) refuses them.
 */
object Json {
    fun parse(text: String): Any? {
        val reader = Reader(text)
        val value = reader.value()
        reader.skipSpace()
        if (!reader.atEnd()) reader.fail("trailing characters after the JSON value")
        return value
    }

    fun write(value: Any?, indent: Int = 1): String =
        StringBuilder().also { Writer(it, indent).value(value, 0) }.append('\n').toString()

    private class Reader(private val text: String) {
        private var pos = 0

        fun atEnd() = pos >= text.length

        fun fail(problem: String): Nothing {
            val line = text.substring(0, minOf(pos, text.length)).count { it == '\n' } + 1
            throw MetadataException(
                "Invalid JSON at line $line (offset $pos): $problem. " +
                    "Pass the JSON file written by edge_backbones, unedited.",
            )
        }

        fun skipSpace() {
            while (!atEnd() && text[pos] in " \t\r\n") pos++
        }

        fun value(): Any? {
            skipSpace()
            if (atEnd()) fail("unexpected end of input")
            return when (val c = text[pos]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> if (c == '-' || c.isDigit()) number() else fail("unexpected '$c'")
            }
        }

        private fun literal(word: String, result: Any?): Any? {
            if (!text.startsWith(word, pos)) fail("expected '$word'")
            pos += word.length
            return result
        }

        private fun obj(): Map<String, Any?> {
            val map = LinkedHashMap<String, Any?>()
            pos++
            skipSpace()
            if (!atEnd() && text[pos] == '}') return map.also { pos++ }
            while (true) {
                skipSpace()
                if (atEnd() || text[pos] != '"') fail("expected a string key")
                val key = string()
                skipSpace()
                if (atEnd() || text[pos] != ':') fail("expected ':' after key \"$key\"")
                pos++
                if (map.containsKey(key)) fail("duplicate key \"$key\"")
                map[key] = value()
                skipSpace()
                if (atEnd()) fail("unterminated object")
                when (text[pos++]) {
                    ',' -> continue
                    '}' -> return map
                    else -> { pos--; fail("expected ',' or '}'") }
                }
            }
        }

        private fun array(): List<Any?> {
            val list = ArrayList<Any?>()
            pos++
            skipSpace()
            if (!atEnd() && text[pos] == ']') return list.also { pos++ }
            while (true) {
                list.add(value())
                skipSpace()
                if (atEnd()) fail("unterminated array")
                when (text[pos++]) {
                    ',' -> continue
                    ']' -> return list
                    else -> { pos--; fail("expected ',' or ']'") }
                }
            }
        }

        private fun string(): String {
            val out = StringBuilder()
            pos++
            while (true) {
                if (atEnd()) fail("unterminated string")
                val c = text[pos++]
                when {
                    c == '"' -> return out.toString()
                    c == '\\' -> escape(out)
                    c < ' ' -> { pos--; fail("control character in a string") }
                    else -> out.append(c)
                }
            }
        }

        private fun escape(out: StringBuilder) {
            if (atEnd()) fail("unterminated escape")
            when (val e = text[pos++]) {
                '"', '\\', '/' -> out.append(e)
                'b' -> out.append('\b')
                'f' -> out.append('\u000C')
                'n' -> out.append('\n')
                'r' -> out.append('\r')
                't' -> out.append('\t')
                'u' -> {
                    if (pos + 4 > text.length) fail("short \\u escape")
                    val code = text.substring(pos, pos + 4).toIntOrNull(16)
                        ?: fail("bad \\u escape")
                    out.append(code.toChar())
                    pos += 4
                }
                else -> { pos--; fail("bad escape '\\$e'") }
            }
        }

        private fun number(): Any {
            val start = pos
            if (text[pos] == '-') pos++
            digits()
            var integral = true
            if (!atEnd() && text[pos] == '.') { integral = false; pos++; digits() }
            if (!atEnd() && (text[pos] == 'e' || text[pos] == 'E')) {
                integral = false
                pos++
                if (!atEnd() && (text[pos] == '+' || text[pos] == '-')) pos++
                digits()
            }
            val literal = text.substring(start, pos)
            if (integral) literal.toLongOrNull()?.let { return it }
            return literal.toDouble()
        }

        private fun digits() {
            val start = pos
            while (!atEnd() && text[pos].isDigit()) pos++
            if (pos == start) fail("expected a digit")
        }
    }

    private class Writer(private val out: StringBuilder, private val indent: Int) {
        fun value(v: Any?, depth: Int) {
            when (v) {
                null -> out.append("null")
                is Boolean -> out.append(v)
                is String -> string(v)
                is Int, is Long, is Short, is Byte -> out.append(v)
                is Number -> number(v.toDouble())
                is Map<*, *> -> obj(v, depth)
                is Iterable<*> -> array(v.toList(), depth)
                is DoubleArray -> array(v.toList(), depth)
                is FloatArray -> array(v.map { it.toDouble() }, depth)
                is IntArray -> array(v.toList(), depth)
                else -> throw InputException(
                    "Cannot write a ${v::class.simpleName} as JSON; convert it to a " +
                        "map, list, string, number, boolean or null first.",
                )
            }
        }

        private fun number(d: Double) {
            if (d.isNaN() || d.isInfinite()) {
                throw InputException(
                    "Refusing to write $d into JSON (strict JSON has no NaN or " +
                        "Infinity); write null for a missing number.",
                )
            }
            out.append(d.toString())
        }

        private fun newline(depth: Int) {
            out.append('\n')
            repeat(depth * indent) { out.append(' ') }
        }

        private fun obj(map: Map<*, *>, depth: Int) {
            if (map.isEmpty()) { out.append("{}"); return }
            out.append('{')
            map.entries.forEachIndexed { i, (k, v) ->
                if (i > 0) out.append(',')
                newline(depth + 1)
                string(k.toString())
                out.append(": ")
                value(v, depth + 1)
            }
            newline(depth)
            out.append('}')
        }

        private fun array(list: List<*>, depth: Int) {
            if (list.isEmpty()) { out.append("[]"); return }
            out.append('[')
            list.forEachIndexed { i, v ->
                if (i > 0) out.append(',')
                newline(depth + 1)
                value(v, depth + 1)
            }
            newline(depth)
            out.append(']')
        }

        private fun string(s: String) {
            out.append('"')
            for (c in s) {
                when {
                    c == '"' -> out.append("\\\"")
                    c == '\\' -> out.append("\\\\")
                    c == '\n' -> out.append("\\n")
                    c == '\r' -> out.append("\\r")
                    c == '\t' -> out.append("\\t")
                    c < ' ' -> out.append("\\u%04x".format(c.code))
                    else -> out.append(c)
                }
            }
            out.append('"')
        }
    }
}
