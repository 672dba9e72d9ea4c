"""Speech: the eSpeak NG synthesiser with exact phone timings, the phone set, and the sentence grammar."""
