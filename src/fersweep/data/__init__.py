"""Reading, cleaning, preprocessing, caching and splitting the emotion data sets."""
