// pgjdbc (Debian's libpostgresql-jdbc-java) behaviours for the client matrix, run as a single-file source program:
//   java -cp /usr/share/java/postgresql.jar JdbcMatrix.java CASE HOST PORT DATABASE USER SUFFIX   (password in PGPASSWORD)
// Prints the transcript, one line per observation; the C# test runs it direct and through the gateway and compares.
import java.sql.*;
import java.util.*;

public class JdbcMatrix {
    static final List<String> lines = new ArrayList<>();
    static String sfx;

    static void add(String line) { lines.add(line); }

    static void check(boolean condition, String description) {
        if (!condition) add("CHECK FAILED: " + description);
    }

    static String describe(SQLException e) {
        return e.getClass().getSimpleName() + " [" + e.getSQLState() + "] " + e.getMessage().split("\n")[0];
    }

    static String rows(ResultSet rs) throws SQLException {
        var out = new StringBuilder();
        int n = rs.getMetaData().getColumnCount();
        while (rs.next()) {
            out.append('(');
            for (int i = 1; i <= n; i++) out.append(i > 1 ? "," : "").append(rs.getString(i));
            out.append(')');
        }
        return out.toString();
    }

    static Connection open(String url, Properties props) throws SQLException {
        return DriverManager.getConnection(url, props);
    }

    static void prepared(String url, Properties props) throws SQLException {
        props.setProperty("prepareThreshold", "2");
        try (var conn = open(url, props)) {
            conn.createStatement().execute("CREATE TABLE jp_" + sfx + " (id int PRIMARY KEY, v int)");
            conn.createStatement().execute("INSERT INTO jp_" + sfx + " VALUES (1, 10), (2, 20)");
            try (var ps = conn.prepareStatement("SELECT id, v FROM jp_" + sfx + " WHERE id = ?")) {
                for (int i = 0; i < 5; i++) {
                    ps.setInt(1, 1 + i % 2);
                    try (var rs = ps.executeQuery()) { add("select #" + (i + 1) + ": " + rows(rs)); }
                }
                try (var rs = conn.createStatement().executeQuery("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%jp_%'")) {
                    add("server-prepared statements: " + rows(rs));
                }
                conn.createStatement().execute("ALTER TABLE jp_" + sfx + " ALTER COLUMN v TYPE text USING 'v' || v");
                for (int i = 0; i < 3; i++) {
                    ps.setInt(1, 2);
                    try (var rs = ps.executeQuery()) { add("after ALTER #" + (i + 1) + ": " + rows(rs)); }
                    catch (SQLException e) { add("after ALTER #" + (i + 1) + ": " + describe(e)); }
                }
            }
        }
    }

    static void batch(String url, Properties props) throws SQLException {
        try (var conn = open(url, props)) {
            conn.createStatement().execute("CREATE TABLE jb_" + sfx + " (id int PRIMARY KEY, name text)");
            try (var ps = conn.prepareStatement("INSERT INTO jb_" + sfx + " VALUES (?, ?)")) {
                for (int i = 1; i <= 200; i++) { ps.setInt(1, i); ps.setString(2, "n" + i); ps.addBatch(); }
                add("batch counts: " + Arrays.stream(ps.executeBatch()).sum());
            }
            conn.setAutoCommit(false);
            try (var ps = conn.prepareStatement("INSERT INTO jb_" + sfx + " VALUES (?, ?)")) {
                for (int i : new int[] { 500, 501, 1, 502 }) { ps.setInt(1, i); ps.setString(2, "x"); ps.addBatch(); }
                ps.executeBatch();
                add("failing batch: no error");
            } catch (BatchUpdateException e) {
                add("failing batch: " + describe(e) + " counts=" + Arrays.toString(e.getUpdateCounts()));
                var next = e.getNextException();
                if (next != null) add("failing batch next: " + describe(next));
            }
            conn.rollback();
            conn.setAutoCommit(true);
            try (var st = conn.createStatement()) {
                st.addBatch("INSERT INTO jb_" + sfx + " VALUES (900, 'a')");
                st.addBatch("UPDATE jb_" + sfx + " SET name = 'b' WHERE id <= 10");
                st.addBatch("DELETE FROM jb_" + sfx + " WHERE id = 900");
                add("statement batch counts: " + Arrays.toString(st.executeBatch()));
            }
            try (var rs = conn.createStatement().executeQuery("SELECT count(*), sum(id) FROM jb_" + sfx)) { add("rows: " + rows(rs)); }
        }
    }

    static void generatedKeys(String url, Properties props) throws SQLException {
        try (var conn = open(url, props)) {
            conn.createStatement().execute("CREATE TABLE jg_" + sfx + " (id serial PRIMARY KEY, name text, created int DEFAULT 7)");
            try (var ps = conn.prepareStatement("INSERT INTO jg_" + sfx + " (name) VALUES (?)", Statement.RETURN_GENERATED_KEYS)) {
                for (var name : new String[] { "a", "b" }) {
                    ps.setString(1, name);
                    ps.executeUpdate();
                    try (var keys = ps.getGeneratedKeys()) { add("generated keys for " + name + ": " + rows(keys)); }
                }
            }
            try (var ps = conn.prepareStatement("INSERT INTO jg_" + sfx + " (name) VALUES (?)", new String[] { "id" })) {
                ps.setString(1, "c"); ps.addBatch();
                ps.setString(1, "d"); ps.addBatch();
                ps.executeBatch();
                try (var keys = ps.getGeneratedKeys()) { add("batch generated ids: " + rows(keys)); }
            }
        }
    }

    static void cancel(String url, Properties props) throws Exception {
        try (var conn = open(url, props); var watcher = open(url, props); var st = conn.createStatement()) {
            var marker = "sleep_" + sfx;
            var thread = new Thread(() -> {
                try {
                    long deadline = System.currentTimeMillis() + 15000;
                    while (System.currentTimeMillis() < deadline) {
                        try (var ps = watcher.prepareStatement("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE ? AND pid <> pg_backend_pid()")) {
                            ps.setString(1, "%" + marker + "%");
                            try (var rs = ps.executeQuery()) { rs.next(); if (rs.getInt(1) > 0) { st.cancel(); return; } }
                        }
                        Thread.sleep(20);
                    }
                } catch (Exception e) { add("watcher: " + e); }
            });
            thread.start();
            long started = System.currentTimeMillis();
            try {
                st.execute("SELECT pg_sleep(10) /* " + marker + " */");
                add("pg_sleep(10) was not cancelled");
            } catch (SQLException e) {
                add("pg_sleep(10): " + describe(e));
                check("57014".equals(e.getSQLState()), "57014 query_canceled");
            }
            long elapsed = System.currentTimeMillis() - started;
            thread.join();
            check(elapsed < 5000, "cancelled within 5 s (took " + elapsed + " ms)");
            try (var rs = st.executeQuery("SELECT 'usable after the cancel'")) { add("after: " + rows(rs)); }
        }
    }

    public static void main(String[] args) {
        String name = args[0];
        sfx = args[5];
        String url = "jdbc:postgresql://" + args[1] + ":" + args[2] + "/" + args[3] + "?sslmode=require&connectTimeout=15&socketTimeout=40";
        var props = new Properties();
        props.setProperty("user", args[4]);
        props.setProperty("password", System.getenv("PGPASSWORD"));
        try {
            switch (name) {
                case "prepared" -> prepared(url, props);
                case "batch" -> batch(url, props);
                case "generated-keys" -> generatedKeys(url, props);
                case "cancel" -> cancel(url, props);
                default -> throw new IllegalArgumentException("unknown case " + name);
            }
        } catch (SQLException e) {
            add("UNHANDLED " + describe(e));
        } catch (Exception e) {
            add("UNHANDLED " + e);
        }
        for (var line : lines) System.out.println(line.replace(sfx, "{sfx}"));
    }
}
