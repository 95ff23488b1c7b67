"""The app's logic (no Streamlit): request limits and the generation gate, the model check, the
Generate controls, generation and sweeps, real-data views and the quiz, metric files and figures,
the Candidates cursor and the verdict store. Pages only parse widgets, call this and draw."""
