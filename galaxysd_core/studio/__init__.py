"""The app's logic (no Streamlit): request limits, cached models, controls, generation, real-data
views, the quiz, metric files, figures and the verdict store. Pages only draw what this returns."""
