"""A C2SP tlog-witness that anyone can run (`notar witness serve`, SPEC §11): it checks a log's
signature and consistency, keeps the latest size and root of each log durably, and cosigns."""
