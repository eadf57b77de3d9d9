file(REMOVE_RECURSE
  "libnexuslite.a"
)
