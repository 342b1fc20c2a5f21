-- Whether entry_counts_windows.sql has anything to read: a row of its `counted` part (the
-- same filter), from the key columns alone. A fleet that counts nothing (the distro exports
-- no metrics by default) is answered in a few ms, where planning that query costs ~20.
SELECT count() > 0
FROM {{db}}.chainmap_entry_counts
WHERE ChainId IN {chains:Array(String)}
  AND Minute >= toDateTime(arrayMin({starts:Array(Int64)}))
  AND Minute < toDateTime({after_minute:Int64})
  AND {{row_environment}}
