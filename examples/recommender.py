"""The seeds' truncated-SVD recommender on MovieLens-100k.

    pip install --no-deps recbole==1.2.1      # ships ml-100k; or load_ml100k("path/to/u.data")
    python examples/recommender.py
"""
from bigmodel.data import load_ml100k
from bigmodel.recsys import SVDRecommender, train_test_split

train, test = train_test_split(load_ml100k(), test_size=0.2, random_state=0)
rec = SVDRecommender(k=30).fit(train)
print(rec.evaluate(test))                      # RMSE, MAE, precision@10, recall@10
print("user 1 might like:", rec.recommend(1, n=10).tolist())
print("predicted rating of item 50 by user 1:", float(rec.predict([1], [50])[0]))
